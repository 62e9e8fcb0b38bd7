"""Per-run plots, written into the run folder (``<run>/plots/``) and logged to W&B when it is a logger.

* ``quality_vs_bytes.png``: test NDCG@10 against bytes per item for each row of the run's compression report
  (the model at each precision, the frozen-LM teacher);
* ``ndcg_by_subset.png``: test NDCG@10 on every evaluated subset (all, warm / cold items or users, each
  quantisation), when the run has more than one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SUBSET_METRIC = "ndcg@10"


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (plots are files, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_quality_vs_bytes(report: Mapping[str, Any], path: Path) -> bool:
    """Scatter of the report's rows (NDCG@10 vs bytes/item, log x); False when no row has both."""
    rows = [r for r in report.get("rows", []) if r.get("ndcg@10") is not None and r.get("bytes_per_item")]
    if not rows:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for r in rows:
        ax.scatter(r["bytes_per_item"], r["ndcg@10"], marker="^" if r.get("lm_at_serving") else "o")
        ax.annotate(r["name"], (r["bytes_per_item"], r["ndcg@10"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per item")
    ax.set_ylabel("test NDCG@10")
    ax.set_title("quality vs. bytes per item")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def subset_values(metrics: Mapping[str, float], metric: str = SUBSET_METRIC) -> dict[str, float]:
    """``{stage: value}`` of ``<stage>/<metric>`` for every test stage (``test``, ``test_cold``, ``test_int8``...)."""
    return {
        key.split("/", 1)[0]: float(value)
        for key, value in sorted(metrics.items())
        if key.startswith("test") and key.endswith(f"/{metric}")
    }


def plot_subsets(metrics: Mapping[str, float], path: Path, metric: str = SUBSET_METRIC) -> bool:
    """Bars of ``metric`` per test subset; False when fewer than two subsets were evaluated."""
    values = subset_values(metrics, metric)
    if len(values) < 2:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(values)), 3.5), constrained_layout=True)
    ax.bar(range(len(values)), list(values.values()))
    ax.set_xticks(range(len(values)), list(values), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{metric} per evaluated subset")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_run_plots(out: Path, metrics: Mapping[str, float], report: Mapping[str, Any] | None) -> list[Path]:
    """Write the run's plots into ``out/plots`` and return their paths."""
    folder = Path(out) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if report is not None and plot_quality_vs_bytes(report, folder / "quality_vs_bytes.png"):
        written.append(folder / "quality_vs_bytes.png")
    if plot_subsets(metrics, folder / "ndcg_by_subset.png"):
        written.append(folder / "ndcg_by_subset.png")
    return written


REPORT_COLUMNS = ("name", "quantization", "dim", "train_params", "serve_bytes", "bytes_per_item", "lm_at_serving",
                  "ndcg@10", "recall@10", "ndcg_retained")  # fmt: skip


def log_to_wandb(loggers: Sequence[Any], plots: Sequence[Path], report: Mapping[str, Any] | None) -> None:
    """Log the plots (``plots/<name>``) and the compression report (``compression/report`` table) to every W&B
    logger among ``loggers``; other loggers are left alone."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if not isinstance(lg, WandbLogger):
            continue
        import wandb

        payload: dict[str, Any] = {f"plots/{Path(p).stem}": wandb.Image(str(p)) for p in plots}
        if report is not None:
            rows = [[r.get(c) for c in REPORT_COLUMNS] for r in report.get("rows", [])]
            payload["compression/report"] = wandb.Table(columns=list(REPORT_COLUMNS), data=rows)
        if payload:
            lg.experiment.log(payload)  # one history row: every plot and the table together
