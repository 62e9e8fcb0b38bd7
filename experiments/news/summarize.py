"""results.md of the news study, from the run folders that experiments/news/run.sh writes.

Usage: python experiments/news/summarize.py logs/studies/news experiments/news/runs > experiments/news/results.md
       python experiments/news/summarize.py --chosen-lr logs/studies/news nemig-de   # the LM's chosen lr

Layout read: ``<root>/<dataset>/<group>/<run>/`` with ``group`` one of ``fixed`` (pop, ctr, lm_content),
``random``, ``compressor`` (the default news compressor, several seeds), ``variants`` (the "what was
tried" rows, seed 1), ``ids``, ``gnns`` and ``lm_finetune`` (the fine-tuned LM: a learning-rate grid on seed 1,
then the lr with the best seed-1 val AUC on the other seeds; its row is that lr's runs). Each row gives the
mean (± std over seeds) and each seed's bootstrap 95% CI of the test AUC; the target is checked on NeMig EN. ``notes.md`` beside this script is appended verbatim.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

KEYS = ("auc", "auc_ci_low", "auc_ci_high", "mrr", "ndcg@5", "ndcg@10")
BASELINES = ["RandomScores", "Popularity", "ImpressionCTR", "LMContent"]
DATASETS = {"nemig": "NeMig EN", "nemig-de": "NeMig DE"}
TARGET_DATASET = "nemig"
NOTES = {
    "nemig-de": (
        "The DE rows use the packaged all-MiniLM-L6-v2, an English-only encoder (no hub access on the machine "
        "that ran them), so lm_content and the compressor's text input see German titles and abstracts through "
        "an English vocabulary. Where the Hugging Face hub is reachable, the configuration for German is "
        "`python run.py domain=news dataset=nemig-de encoder=hf "
        "encoder.model_name=sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2` "
        '(run.sh: `ENCODER="encoder=hf encoder.model_name=..."`); it was not run here.'
    ),
}
# keys every run of the study sets: left out of a variant's name
COMMON = ("domain", "logger", "seed", "trainer.max_epochs", "+trainer.inference_mode", "dataset")
# rows of the earlier study (2026-12-07) whose run folders were not kept: (variant, val AUC, test AUC [CI])
RECORDED = [
    ("model=compressor (cosine, T=0.1), gnn=gat", "0.5227 (4)", "0.5107 [0.4991, 0.5226]"),
    ("model=compressor model.item_id=true (id residual), gnn=gat", "0.5079", "0.5087"),
]


def row_name(cfg: dict) -> str:
    target = cfg["model"]["_target_"].rsplit(".", 1)[-1]
    if target != "GNNCompressor":
        return target
    name = f"compressor gnn={cfg['gnn']['_target_'].rsplit('.', 2)[-2]}"
    if cfg["model"].get("item_bias"):
        name += f" item_bias ({cfg['model'].get('item_bias_init', 'zero')} init)"
    return name


def best_epoch(run: Path, metrics: dict) -> tuple[float, float]:
    """(best epoch, epochs run), 1-based; NaN for models without training."""
    ckpt = run / "checkpoints" / "best.ckpt"
    if not ckpt.exists():
        return float("nan"), float("nan")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return float(state["epoch"]) + 1, metrics.get("fit/epochs", float("nan"))  # epochs completed


def variant_name(run: Path) -> str:
    """The run's Hydra overrides (its sweep subfolder name) without the study's common keys."""
    parts = [p for p in run.name.split(",") if p.split("=", 1)[0] not in COMMON]
    return " ".join(parts) or "(defaults)"


def read_runs(root: Path) -> list[dict]:
    runs = []
    for mfile in sorted(root.rglob("metrics.json")):
        run = mfile.parent
        rel = run.relative_to(root).parts
        if len(rel) < 3:
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        m = json.loads(mfile.read_text())
        be, ep = best_epoch(run, m)
        runs.append(
            {
                **{k: m.get(f"test_impressions/{k}", float("nan")) for k in KEYS},
                "dataset": cfg["dataset"]["name"],
                "group": rel[1],
                "name": row_name(cfg),
                "variant": variant_name(run),
                "val_auc": m.get("val_impressions/auc", float("nan")),
                "seconds": m.get("fit/seconds", 0.0),
                "best_epoch": be,
                "epochs": ep,
                "seed": cfg["seed"],
                "lr": float(cfg["optimizer"]["lr"]),
                "max_epochs": cfg["trainer"]["max_epochs"],
                "n": m.get("test_impressions/n_impressions", float("nan")),
            }
        )
    return runs


def ms(rs: list[dict], key: str, fmt: str = ".4f") -> str:
    v = np.array([r[key] for r in rs], dtype=float)
    return f"{v.mean():{fmt}}" + (f" ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else "")


def ci(r: dict) -> str:
    return f"[{r['auc_ci_low']:.4f}, {r['auc_ci_high']:.4f}]"


def epochs(rs: list[dict]) -> str:
    return ", ".join(
        "-" if np.isnan(r["best_epoch"]) else f"{r['best_epoch']:.0f}/{r['epochs']:.0f}" for r in rs
    )


LM_ROW = "LMFinetune"


def chosen_lr(runs: list[dict]) -> float | None:
    """The fine-tuned LM's learning rate: best seed-1 val AUC among its grid (ties: the smaller lr); None
    without a seed-1 run. Runs that hit their epoch maximum still count (they are flagged in the tables)."""
    tuned = [r for r in runs if r["name"] == LM_ROW and r["seed"] == 1]
    if not tuned:
        return None
    return max(tuned, key=lambda r: (r["val_auc"], -r["lr"]))["lr"]


def table_runs(runs: list[dict], dataset: str) -> list[dict]:
    """``dataset``'s runs that make its main table and LM grid (every group but the "what was tried" variants)."""
    return [r for r in runs if r["dataset"] == dataset and r["group"] != "variants"]


def main_rows(runs: list[dict], dataset: str) -> dict[str, list[dict]]:
    """Rows of ``dataset``'s table (the fine-tuned LM: its chosen lr's runs only)."""
    rows: dict[str, list[dict]] = defaultdict(list)
    here = table_runs(runs, dataset)
    lr = chosen_lr(here)
    for r in here:
        if r["name"] != LM_ROW or r["lr"] == lr:
            rows[r["name"]].append(r)
    return {n: sorted(rs, key=lambda r: r["seed"]) for n, rs in rows.items()}


def lm_grid(runs: list[dict], dataset: str) -> None:
    """The fine-tuned LM's learning-rate grid on seed 1 (val AUC chooses; a run that hit its maximum is flagged)."""
    here = table_runs(runs, dataset)
    tuned = sorted((r for r in here if r["name"] == LM_ROW and r["seed"] == 1), key=lambda r: r["lr"])
    if not tuned:
        return
    lr = chosen_lr(here)
    print("Fine-tuned LM, learning rate chosen on seed 1's val AUC (patience 3):\n")
    print("| lr | max epochs | best epoch / run | val AUC | test AUC [95% CI] | |")
    print("|---|---|---|---|---|---|")
    for r in tuned:
        capped = r["epochs"] >= r["max_epochs"]
        note = ("**chosen**" if r["lr"] == lr else "") + (" hit the maximum: not converged" if capped else "")
        print(
            f"| {r['lr']:g} | {r['max_epochs']} | {r['best_epoch']:.0f}/{r['epochs']:.0f} | {r['val_auc']:.4f} "
            f"| {r['auc']:.4f} {ci(r)} | {note.strip()} |"
        )
    print()


def print_table(rows: dict[str, list[dict]]) -> None:
    print(
        "| model | seeds | test AUC (mean ± std) | AUC 95% CI per seed | MRR | nDCG@5 | nDCG@10 | val AUC "
        "| train s | best epoch / run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    names = sorted(rows, key=lambda n: (BASELINES.index(n) if n in BASELINES else len(BASELINES), n))
    for name in names:
        rs = rows[name]
        print(
            f"| {name} | {','.join(str(r['seed']) for r in rs)} | {ms(rs, 'auc')} | "
            f"{' '.join(ci(r) for r in rs)} | {ms(rs, 'mrr')} | {ms(rs, 'ndcg@5')} | {ms(rs, 'ndcg@10')} | "
            f"{ms(rs, 'val_auc')} | {ms(rs, 'seconds', '.0f')} | {epochs(rs)} |"
        )
    n = sorted({r["n"] for rs in rows.values() for r in rs})
    print(
        f"\nTest impressions evaluated (with a click and a non-click): {', '.join(f'{x:,.0f}' for x in n)}."
    )


DEFAULT_ROW = "compressor gnn=gat item_bias (ctr init)"  # python run.py domain=news (model=news_compressor)


def verdict(rows: dict[str, list[dict]]) -> None:
    """The target on NeMig EN: the default compressor's mean test AUC inside the best position-blind
    baseline's (seed-1) CI, and each of the compressor's seeds' CIs above 0.5."""
    base = {n: rs for n, rs in rows.items() if n in BASELINES}
    # the target is about the default news configuration (conf/model/news_compressor.yaml) only
    comp = {n: rs for n, rs in rows.items() if n == DEFAULT_ROW}
    if not base or not comp:
        print("Target: not evaluated (baseline or compressor runs missing).")
        return
    best = max(base, key=lambda n: np.mean([r["auc"] for r in base[n]]))
    ref = base[best][0]
    print(
        f"Target: the default news config's test AUC (mean over 3 seeds) inside the bootstrap 95% CI of the "
        f"best position-blind row ({best}, {ref['auc']:.4f} {ci(ref)}), with its own CI excluding 0.5.\n"
    )
    for name, rs in comp.items():
        mean = float(np.mean([r["auc"] for r in rs]))
        inside = ref["auc_ci_low"] <= mean <= ref["auc_ci_high"]
        above = all(r["auc_ci_low"] > 0.5 for r in rs)
        enough = len(rs) >= 3
        met = inside and above and enough
        lows = ", ".join(f"{r['auc_ci_low']:.4f}" for r in rs)
        print(
            f"- {name} (seeds {','.join(str(r['seed']) for r in rs)}): mean test AUC {mean:.4f}, "
            f"{'inside' if inside else 'outside'} {best}'s CI {ci(ref)} "
            f"({mean - ref['auc']:+.4f} vs {best}); CI lower ends {lows} "
            f"({'all' if above else 'not all'} above 0.5){'' if enough else '; fewer than 3 seeds'}. "
            f"**Target {'met' if met else 'missed'}.**"
        )


def tried(runs: list[dict]) -> None:
    print("| variant | val AUC (best epoch) | test AUC [95% CI] |")
    print("|---|---|---|")
    for variant, val, test in RECORDED:
        print(f"| {variant} (earlier study, run folder not kept) | {val} | {test} |")
    picked = [
        r
        for r in runs
        if r["dataset"] == TARGET_DATASET
        and r["seed"] == 1
        and r["group"] in ("variants", "compressor")
        and r["name"].startswith("compressor")
    ]
    for r in sorted(picked, key=lambda r: (r["group"] != "compressor", r["variant"])):
        label = f"default: {r['name']}" if r["group"] == "compressor" else f"`{r['variant']}` ({r['name']})"
        print(f"| {label} | {r['val_auc']:.4f} ({r['best_epoch']:.0f}) | {r['auc']:.4f} {ci(r)} |")


def main(root: Path) -> None:
    runs = read_runs(root)
    print((Path(__file__).parent / "header.md").read_text().rstrip() + "\n")
    for dataset, title in DATASETS.items():
        rows = main_rows(runs, dataset)
        if not rows:
            continue
        print(f"## {title} (`dataset={dataset}`)\n")
        print_table(rows)
        print()
        lm_grid(runs, dataset)
        if dataset in NOTES:
            print(NOTES[dataset] + "\n")
        if dataset == TARGET_DATASET:
            print("### Against the target\n")
            verdict(rows)
            print()
    print("## What was tried (NeMig EN, seed 1; chosen on val AUC, test shown for the record)\n")
    tried(runs)
    print()
    notes = Path(__file__).parent / "notes.md"
    if notes.exists():
        print(notes.read_text().rstrip())


KEPT = ("config.yaml", "metrics.json", "protocol.json", "run_info.json")


def keep_runs(root: Path, out: Path) -> int:
    """Copy every run's resolved config, metrics, protocol and run info (seed, commit) from ``root`` to ``out``,
    under the same relative folders; returns the number of runs copied."""
    n = 0
    for mfile in sorted(root.rglob("metrics.json")):
        run = mfile.parent
        if len(run.relative_to(root).parts) < 3:  # the results' rows come from <dataset>/<group>/<run> only
            continue
        dest = out / run.relative_to(root)
        dest.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            if (run / name).is_file():
                shutil.copy2(run / name, dest / name)
        n += 1
    return n


if __name__ == "__main__":
    if sys.argv[1] == "--chosen-lr":  # run.sh: the lr for the fine-tuned LM's other seeds
        best = chosen_lr(table_runs(read_runs(Path(sys.argv[2])), sys.argv[3]))
        if best is None:
            sys.exit(f"no finished seed-1 lm_finetune run of {sys.argv[3]} under {sys.argv[2]}")
        print(f"{best:g}")
        sys.exit(0)
    main(Path(sys.argv[1]))
    if len(sys.argv) > 2:  # python summarize.py logs/studies/news experiments/news/runs > results.md
        print(f"kept {keep_runs(Path(sys.argv[1]), Path(sys.argv[2]))} runs", file=sys.stderr)
