"""experiments/news/summarize.py: the fine-tuned LM's row is the lr chosen on seed 1's val AUC."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summarize():
    spec = importlib.util.spec_from_file_location("news_summarize", ROOT / "experiments/news/summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, seed: int, lr: float, val: float, group: str = "lm_finetune") -> dict:
    return {"dataset": "nemig-de", "group": group, "name": name, "seed": seed, "lr": lr, "val_auc": val}


def test_lm_row_keeps_the_lr_with_the_best_seed1_val_auc() -> None:
    s = _summarize()
    runs = [
        _run("LMFinetune", 1, 1e-4, 0.57),
        _run("LMFinetune", 1, 1e-3, 0.58),
        _run("LMFinetune", 2, 1e-3, 0.50),  # other seeds never choose
        _run("LMFinetune", 2, 1e-4, 0.99),
        _run("Popularity", 1, 5e-3, 0.60, group="fixed"),
    ]
    assert s.chosen_lr(runs) == 1e-3
    rows = s.main_rows(runs, "nemig-de")
    assert [(r["seed"], r["lr"]) for r in rows["LMFinetune"]] == [(1, 1e-3), (2, 1e-3)]
    assert len(rows["Popularity"]) == 1
    assert s.chosen_lr([_run("LMFinetune", 1, 3e-4, 0.5), _run("LMFinetune", 1, 1e-4, 0.5)]) == 1e-4  # tie
    assert s.chosen_lr([_run("LMFinetune", 2, 1e-4, 0.5)]) is None
