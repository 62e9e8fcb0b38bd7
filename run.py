"""Entry point: ``python run.py domain=news gnn=gat`` (add ``-m`` and comma lists for sweeps)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from recsys_gnn.pipeline import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
