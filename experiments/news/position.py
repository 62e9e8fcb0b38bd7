"""NeMig's slot bias: where clicked candidates sat in the impression list, and what position alone "predicts".

A logging artefact, not a recommender: no model of the study reads a candidate's position. This script shows
how strong that artefact is, on the same test impressions as every row of ``results.md``:

- click share by slot (1-based position of the candidate in the impression list) over training and test
  impressions, and the click-through rate of each slot;
- two position-only scores, evaluated like every model (AUC/MRR/nDCG@5/10 over the test impressions with a
  click and a non-click, percentile-bootstrap 95% CI of AUC): ``first slot first`` (score = -slot) and
  ``training slot CTR`` (score = the click-through rate of the candidate's slot over training impressions).

Usage (writes ``experiments/news/position.md`` and ``position.json``)::

    RECSYS_GNN_RAW=../shared/data .venv/bin/python experiments/news/position.py nemig nemig-de
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir

from recsys_gnn.eval.news import per_impression_metrics, summarize
from recsys_gnn.pipeline import load_data

log = logging.getLogger("position")
ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
MAX_SLOT = 10  # slots past this are pooled into "10+"


def slot_table(impressions: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per slot 1..MAX_SLOT (the last pools the rest): shown, clicked, click share, CTR."""
    shown = np.zeros(MAX_SLOT)
    clicked = np.zeros(MAX_SLOT)
    for imp in impressions:
        labels = np.asarray(imp["labels"], dtype=float)
        slots = np.minimum(np.arange(len(labels)), MAX_SLOT - 1)
        np.add.at(shown, slots, 1)
        np.add.at(clicked, slots, labels)
    return {
        "shown": shown.tolist(),
        "clicked": clicked.tolist(),
        "click_share": (clicked / max(clicked.sum(), 1)).tolist(),
        "ctr": (clicked / np.maximum(shown, 1)).tolist(),
    }


def position_rows(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Test-impression metrics of the two position-only scores (with the bootstrap CI of AUC)."""
    ctr = np.asarray(slot_table(train)["ctr"])
    labels = [np.asarray(imp["labels"]) for imp in test]
    slots = [np.minimum(np.arange(len(y)), MAX_SLOT - 1) for y in labels]
    rows = {}
    for name, scores in (
        ("first slot first (score = -slot)", [-np.arange(len(y), dtype=float) for y in labels]),
        ("training slot CTR", [ctr[s] for s in slots]),
    ):
        per_imp = per_impression_metrics(scores, labels)
        rows[name] = summarize(per_imp, len(test) - len(per_imp), ci=True)
    return rows


def analyse(dataset: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["domain=news", f"dataset={dataset}", "logger=none"])
    data = load_data(cfg)
    imps = data.impressions or []
    if not imps:
        raise SystemExit(f"error: dataset {dataset} has no impressions")
    by_split = {s: [i for i in imps if i["split"] == s] for s in ("train", "val", "test")}
    log.info("%s: impressions %s", dataset, {s: len(v) for s, v in by_split.items()})
    return {
        "dataset": dataset,
        "impressions": {s: len(v) for s, v in by_split.items()},
        "slots_train": slot_table(by_split["train"]),
        "slots_test": slot_table(by_split["test"]),
        "rows": position_rows(by_split["train"], by_split["test"]),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    out = [
        "# NeMig's slot bias: a logging artefact, not a recommender",
        "",
        "Written by `python experiments/news/position.py " + " ".join(r["dataset"] for r in results) + "`\n"
        "(no randomness; the bootstrap uses seed 0). Slot = 1-based position of the candidate in the impression\n"
        f"list; slots past {MAX_SLOT - 1} are pooled. Same test impressions and metrics as `results.md`\n"
        "(impressions with a click and a non-click). **No model of the study reads a candidate's position**;\n"
        "the rows below only show how much of NeMig's click signal is where the candidate was shown.",
        "",
    ]
    for r in results:
        out += [f"## {r['dataset']} (impressions: {r['impressions']})", ""]
        out += ["| slot | train shown | train click share | train CTR | test click share | test CTR |"]
        out += ["|---|---|---|---|---|---|"]
        tr, te = r["slots_train"], r["slots_test"]
        for s in range(MAX_SLOT):
            if tr["shown"][s] == 0 and te["shown"][s] == 0:
                continue
            label = f"{s + 1}" if s < MAX_SLOT - 1 else f"{MAX_SLOT}+"
            out.append(
                f"| {label} | {int(tr['shown'][s]):,} | {tr['click_share'][s]:.3f} | {tr['ctr'][s]:.3f} | "
                f"{te['click_share'][s]:.3f} | {te['ctr'][s]:.3f} |"
            )
        out += ["", "| position-only score (artefact) | test AUC [95% CI] | MRR | nDCG@5 | nDCG@10 |"]
        out += ["|---|---|---|---|---|"]
        for name, m in r["rows"].items():
            out.append(
                f"| {name} | {m['auc']:.4f} [{m['auc_ci_low']:.4f}, {m['auc_ci_high']:.4f}] | {m['mrr']:.4f} | "
                f"{m['ndcg@5']:.4f} | {m['ndcg@10']:.4f} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    datasets = argv or ["nemig", "nemig-de"]
    results = [analyse(d) for d in datasets]
    (OUT / "position.json").write_text(json.dumps(results, indent=2))
    (OUT / "position.md").write_text(markdown(results))
    log.info("wrote %s", OUT / "position.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
