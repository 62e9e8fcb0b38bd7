"""Cross-fold rating experiment: every model variant on the official MovieLens-100K folds, then mean ± std.

``python -m recsys_gnn.rating.folds --out experiments/rating_ml100k`` runs :func:`run_rating` for each fold and
variant (``<out>/fold<k>/<variant>/`` gets the resolved config, seed, protocol, metrics and classification
report) and writes ``<out>/results.md`` and ``<out>/results.json``. Extra arguments after ``--`` are Hydra
overrides applied to every run (e.g. ``-- rating.epochs=5``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from recsys_gnn.rating.run import run_rating

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
FOLDS = (1, 2, 3, 4, 5)
BASE_OVERRIDES = ("task=rating", "dataset=ml-100k", "split=official", "logger=csv")
# name -> Hydra overrides (on top of conf/rating/default.yaml, whose defaults were chosen on fold 1's validation
# part). "compressor" adds learned user and item ids to the projected item text so that the GNN can carry
# per-user/per-item offsets; "compressor_text" is the compressor as configured for ranking (items from text
# only, users as the mean of their items).
VARIANTS: dict[str, tuple[str, ...]] = {
    "global_mean": ("rating.model=global_mean",),
    "biases": ("rating.model=biases",),
    "biased_mf": (
        "rating.model=biased_mf",
        "rating.optimizer=sgd",
        "rating.lr=5.0",
        "rating.batch_size=1024",
        "rating.epochs=60",
    ),
    "compressor": (
        "rating.model=compressor",
        "model.user_init=id",
        "model.item_id=true",
        "model.dropout=0.1",
    ),
    "compressor_text": ("rating.model=compressor",),
}
REPORTED = ("rmse", "mae", "accuracy", "macro_f1")


def rating_group_overrides(conf_dir: Path = CONF_DIR) -> list[str]:
    """``["+rating=default"]`` unless ``conf/train.yaml`` already lists the ``rating`` group in its defaults."""
    defaults = OmegaConf.load(conf_dir / "train.yaml").get("defaults", [])
    listed = any(isinstance(d, DictConfig) and "rating" in d for d in defaults)
    return [] if listed else ["+rating=default"]


def compose_run(overrides: Sequence[str], output_dir: Path, conf_dir: Path = CONF_DIR) -> DictConfig:
    """Compose ``train.yaml`` with ``overrides`` and the run's output folder."""
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[*rating_group_overrides(conf_dir), *overrides, f"paths.output_dir={output_dir}"],
        )


def run_folds(
    out: Path,
    folds: Sequence[int] = FOLDS,
    variants: dict[str, Sequence[str]] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, dict[int, dict[str, float]]]:
    """Run every variant on every fold; checkpoints go to a temporary folder that is removed afterwards.

    Returns:
        ``{variant: {fold: metrics}}`` (the flat ``metrics.json`` of each run).
    """
    variants = dict(VARIANTS if variants is None else variants)
    results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in variants}
    for fold in folds:
        for name, overrides in variants.items():
            run_dir = out / f"fold{fold}" / name
            ckpt_dir = Path(tempfile.mkdtemp(prefix="rating-ckpt-"))
            try:
                cfg = compose_run(
                    [
                        *BASE_OVERRIDES,
                        f"dataset.reader.fold={fold}",
                        *overrides,
                        *extra,
                        f"rating.checkpoint_dir={ckpt_dir}",
                    ],
                    run_dir,
                )
                t0 = time.perf_counter()
                run_rating(cfg)
                log.info("fold %d %s done in %.1f s", fold, name, time.perf_counter() - t0)
            finally:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
            (run_dir / "best_checkpoint.txt").unlink(missing_ok=True)  # pointed into the removed folder
            results[name][fold] = json.loads((run_dir / "metrics.json").read_text())
    return results


def summarize(results: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per variant and test metric: per-fold values, mean and sample std (ddof=1; 0 for a single fold)."""
    summary: dict[str, dict[str, Any]] = {}
    for name, by_fold in results.items():
        summary[name] = {"folds": sorted(by_fold)}
        for metric in REPORTED:
            values = np.array([by_fold[f][f"test/{metric}"] for f in sorted(by_fold)], dtype=np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            summary[name][metric] = {"values": values.tolist(), "mean": float(values.mean()), "std": std}
        epochs = [by_fold[f].get("fit/epochs") for f in sorted(by_fold)]
        summary[name]["fit_epochs"] = epochs
        summary[name]["fit_seconds"] = [by_fold[f].get("fit/seconds") for f in sorted(by_fold)]
    return summary


def format_results(
    summary: dict[str, dict[str, Any]],
    variants: dict[str, Sequence[str]],
    command: str,
    extra: Sequence[str],
    seed: int,
) -> str:
    """``results.md``: mean ± std table, per-fold RMSE, the protocol and the command."""
    lines = [
        "# Rating prediction on MovieLens-100K, official folds u1..u5",
        "",
        "Test metrics, mean ± sample std (ddof=1) over the folds. Lower RMSE/MAE is better.",
        "",
        "| model | RMSE | MAE | accuracy | macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in REPORTED]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per-fold test RMSE:",
        "",
        "| model | " + " | ".join(f"u{f}" for f in _folds(summary)) + " |",
    ]
    lines.append("|---|" + "---|" * len(_folds(summary)))
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in s["rmse"]["values"]) + " |")
    trained = {name: s for name, s in summary.items() if any(e is not None for e in s["fit_epochs"])}
    if trained:
        lines += ["", "Epochs run per fold (early stopping on val/rmse; the best epoch is tested):", ""]
    for name, s in trained.items():
        secs = sum(x for x in s["fit_seconds"] if x is not None)
        lines.append(f"- {name}: {[int(e) for e in s['fit_epochs']]} ({secs:.0f} s of fitting in all)")
    lines += [
        "",
        "## Protocol",
        "",
        "- data: ml-100k `u<k>.base` / `u<k>.test` (80,000 / 20,000 ratings per fold, k = 1..5); 10% of each "
        "user's `u<k>.base` ratings (seeded) are held out as validation for early stopping and checkpoint "
        "selection, so models are fitted on the remaining ~72,000 ratings; the test set is `u<k>.test`, whole.",
        "- task=rating: explicit ratings 1..5 kept as they are; RMSE/MAE of the predicted rating (the "
        "classifier's expected rating), clipped to [1, 5]; accuracy/macro-F1 over the classes 1..5.",
        f"- seed: {seed} (same for every fold and model); each run's resolved config is "
        "`fold<k>/<model>/config.yaml`, with `run_info.json` (seed, versions, commit) and `protocol.json`.",
        "",
        "## Models (Hydra overrides on top of conf/train.yaml + conf/rating/default.yaml)",
        "",
    ]
    for name, overrides in variants.items():
        lines.append(f"- {name}: `{' '.join([*BASE_OVERRIDES, *overrides, *extra])}`")
    lines += ["", "## Command", "", "```", command, "```", ""]
    return "\n".join(lines)


def _folds(summary: dict[str, dict[str, Any]]) -> list[int]:
    return next(iter(summary.values()))["folds"] if summary else []


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run the folds, write ``results.md``/``results.json`` into ``--out``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--folds", type=int, nargs="+", default=list(FOLDS), choices=FOLDS)
    parser.add_argument("--models", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "folds.log", mode="w")],
    )
    torch.set_num_threads(args.threads)
    variants = {name: VARIANTS[name] for name in args.models}
    command = "python -m recsys_gnn.rating.folds " + " ".join(shlex.quote(a) for a in argv)
    if extra:
        command += " -- " + " ".join(shlex.quote(a) for a in extra)
    results = run_folds(args.out, args.folds, variants, extra)
    summary = summarize(results)
    seed = int(compose_run([*BASE_OVERRIDES, *extra], args.out).seed)
    (args.out / "results.json").write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    (args.out / "results.md").write_text(format_results(summary, variants, command, extra, seed))
    log.info("wrote %s", args.out / "results.md")


if __name__ == "__main__":
    main()
