"""RecBole's LightGCN trained to convergence on this framework's exact split: the outside reference of a study.

``PYTHONPATH=/tmp/recbole-pkgs python -m recsys_gnn.bench.recbole_run domain=music seed=1 hydra.run.dir=<folder>``

Takes the same Hydra overrides as ``run.py`` (dataset, split, seed, ``trainer.max_epochs``,
``callbacks.early_stopping.patience``), builds the identical split with :func:`recsys_gnn.pipeline.load_data`,
writes it as RecBole benchmark files and trains RecBole 1.2.1's LightGCN (its defaults: 64-d, 2 layers, reg
1e-5, Adam lr 1e-3, batch 2048, one negative; ``recbole.<key>=<value>`` overrides any of them) one epoch at a
time, validating by RecBole's full-ranking NDCG@10 after each epoch and stopping after ``patience`` epochs
without improvement. The best epoch's weights are then tested by RecBole's own evaluator (test users ranked
against every item, train and validation items masked). The job folder gets the same files as a ``run.py`` job
(``config.yaml``, ``protocol.json``, ``run_info.json``, ``metrics.json`` with ``test/ndcg@10``, ``test/recall@10``,
``test/recall@20``, ``val/ndcg@10``, ``fit/epochs``, ``fit/seconds``) and ``csv/metrics.csv`` (one row per epoch).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def train_recbole(cfg: DictConfig) -> dict[str, float]:
    """Train and test RecBole's LightGCN as described in the module docstring; returns the metrics."""
    import torch

    from recsys_gnn.bench.recbole_ref import RecBoleLightGCN
    from recsys_gnn.pipeline import load_data, save_run_info

    out = Path(cfg.paths.output_dir).resolve()
    torch.manual_seed(cfg.seed)
    data = load_data(cfg)
    save_run_info(cfg, out, data)
    extra = {
        "topk": [10, 20],
        "seed": int(cfg.seed),
        "metric_decimal_place": 8,
        **dict(cfg.get("recbole") or {}),
    }
    # everything RecBole writes (saved/, log_tensorboard/, log/) goes under the job's recbole/ folder
    ref = RecBoleLightGCN(
        data, out / "recbole", name=str(cfg.dataset.name).replace("-", "_"), extra_config=extra
    )
    max_epochs = int(cfg.trainer.max_epochs)
    patience = int(cfg.callbacks.early_stopping.patience)
    best, best_epoch, best_state, stale = -1.0, -1, None, 0
    rows = []
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(max_epochs):
        ref.train_epoch()
        valid = dict(ref.trainer.evaluate(ref.valid_data, load_best_model=False, show_progress=False))
        ndcg = float(valid["ndcg@10"])
        rows.append({"epoch": epoch, "val/ndcg@10": ndcg, "val/recall@10": float(valid["recall@10"])})
        log.info(
            "epoch %d/%d: val/ndcg@10 %.4f (%.1f s, RecBole LightGCN)",
            epoch + 1,
            max_epochs,
            ndcg,
            ref.epoch_s[-1],
        )
        if ndcg > best:
            best, best_epoch, stale = ndcg, epoch, 0
            best_state = copy.deepcopy(ref.trainer.model.state_dict())
        else:
            stale += 1
            if stale >= patience:
                break
    fit_s = time.perf_counter() - t0
    assert best_state is not None
    ref.trainer.model.load_state_dict(best_state)
    test = dict(ref.trainer.evaluate(ref.test_data, load_best_model=False, show_progress=False))
    ref.close()
    metrics = {
        "test/ndcg@10": float(test["ndcg@10"]),
        "test/recall@10": float(test["recall@10"]),
        "test/ndcg@20": float(test["ndcg@20"]),
        "test/recall@20": float(test["recall@20"]),
        "val/ndcg@10": best,
        "fit/epochs": float(epoch + 1),
        "fit/best_epoch": float(best_epoch),
        "fit/seconds": fit_s,
    }
    (out / "csv").mkdir(parents=True, exist_ok=True)
    with open(out / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    info = json.loads((out / "run_info.json").read_text())
    info["recbole"] = ref.summary(0)["settings"] | {"version": ref.summary(0)["recbole_version"]}
    (out / "run_info.json").write_text(json.dumps(info, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("RecBole LightGCN on %s: %s", cfg.dataset.name, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    OmegaConf.set_struct(cfg, False)
    train_recbole(cfg)


if __name__ == "__main__":
    main()
