"""Entry point: ``python run.py domain=news gnn=gat`` (add ``-m`` and comma lists for sweeps).

Known errors (bad config or data) end the run with one line, ``error: <message>``, and exit status 1;
``RECSYS_GNN_DEBUG=1`` (or ``HYDRA_FULL_ERROR=1``) shows their traceback (see recsys_gnn/cli_errors.py).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from recsys_gnn.cli_errors import one_line_errors
    from recsys_gnn.pipeline import run_job

    with one_line_errors():
        return run_job(cfg)


if __name__ == "__main__":
    main()
