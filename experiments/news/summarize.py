"""Table of the news study: one row per model (mean +- std over seeds) from the runs under a sweep folder.

Usage: python experiments/news/summarize.py logs/studies/news > experiments/news/results.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

KEYS = ("auc", "auc_ci_low", "auc_ci_high", "mrr", "ndcg@5", "ndcg@10")


def row_name(cfg: dict) -> str:
    target = cfg["model"]["_target_"].rsplit(".", 1)[-1]
    if target == "GNNCompressor":
        return f"compressor gnn={cfg['gnn']['_target_'].rsplit('.', 2)[-2]}"
    return target


def best_epoch(run: Path) -> tuple[float, float]:
    """(best epoch, epochs run), 1-based; NaN for models without training."""
    ckpt = run / "checkpoints" / "best.ckpt"
    metrics = json.loads((run / "metrics.json").read_text())
    if not ckpt.exists():
        return float("nan"), float("nan")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return float(state["epoch"]) + 1, metrics.get("fit/epochs", float("nan"))  # epochs completed


def main(root: Path) -> None:
    rows: dict[str, list[dict]] = defaultdict(list)
    for mfile in sorted(root.rglob("metrics.json")):
        run = mfile.parent
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        m = json.loads(mfile.read_text())
        be, ep = best_epoch(run)
        rows[row_name(cfg)].append(
            {
                **{k: m.get(f"test_impressions/{k}", float("nan")) for k in KEYS},
                "val_auc": m.get("val_impressions/auc", float("nan")),
                "seconds": m.get("fit/seconds", 0.0),
                "best_epoch": be,
                "epochs": ep,
                "seed": cfg["seed"],
                "max_epochs": cfg["trainer"]["max_epochs"],
                "n": m.get("test_impressions/n_impressions", float("nan")),
            }
        )
    order = ["RandomScores", "Popularity", "ImpressionCTR", "LMContent"]
    names = sorted(rows, key=lambda n: (order.index(n) if n in order else len(order), n))
    print(
        "| model | seeds | test AUC | AUC 95% CI (seed 1) | MRR | nDCG@5 | nDCG@10 | val AUC | train s | best epoch / run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rs = sorted(rows[name], key=lambda r: r["seed"])

        def ms(key: str, fmt: str = ".4f", rs=rs) -> str:
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():{fmt}}" + (f" ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else "")

        first = rs[0]
        ci = f"[{first['auc_ci_low']:.4f}, {first['auc_ci_high']:.4f}]"
        epochs = ", ".join(
            "-" if np.isnan(r["best_epoch"]) else f"{r['best_epoch']:.0f}/{r['epochs']:.0f}" for r in rs
        )
        print(
            f"| {name} | {','.join(str(r['seed']) for r in rs)} | {ms('auc')} | {ci} | {ms('mrr')} | "
            f"{ms('ndcg@5')} | {ms('ndcg@10')} | {ms('val_auc')} | {ms('seconds', '.0f')} | {epochs} |"
        )
    n = {r["n"] for rs in rows.values() for r in rs}
    print(f"\nTest impressions evaluated: {sorted(n)}.")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
