"""Summarise a sweep: mean ± std of metrics over the runs (seeds) of each config cell, as Markdown, CSV and plots.

``python -m recsys_gnn.aggregate <sweep dir> [--out experiments/<study>] [--by gnn._target_,graph._target_]
[--metrics test/ndcg@10,test/recall@10]``

Every job folder of the sweep (one holding ``metrics.json``, ``FAILED`` or ``run_info.json``) is read: its
resolved ``config.yaml``, ``metrics.json`` and ``protocol.json``. Runs are grouped by the ``--by`` keys (dotted
paths into ``config.yaml``; default: every key that varies across the runs, except the seed and paths), and the
output folder gets

* ``results.md``: one row per cell with ``mean ± std`` (sample std, ddof=1, over the cell's runs), the number of
  runs and of failed runs, the seeds, the evaluation protocol shared by the runs, and the failed jobs;
* ``results.csv``: the same cells with ``<metric>_mean``, ``<metric>_std``, ``<metric>_n`` columns;
* ``runs.csv``: one row per job (status, seed, group keys, metrics, overrides);
* ``bar_<metric>.png`` per metric, and ``dim_<metric>.png`` (metric vs ``compress.dim``) when the dim varies;
* ``runs/<job>/``: copies of each job's config, metrics, protocol and run info, and ``aggregate.json`` with the
  command, so the numbers can be traced to the runs that produced them.

Failed jobs (a ``FAILED`` file) and incomplete ones (no ``metrics.json``) are listed, never dropped silently.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("test/ndcg@10", "test/recall@10", "val/ndcg@10")
JOB_MARKERS = ("metrics.json", "FAILED", "run_info.json")
MARKER = "aggregate.json"  # written into every output folder; such folders are never read as jobs
IGNORED_KEYS = ("seed",)
IGNORED_PREFIXES = ("paths.", "hydra.")
COPIED_FILES = ("config.yaml", "metrics.json", "protocol.json", "run_info.json", "compression.md", "FAILED")
DIM_KEY = "compress.dim"


@dataclass
class Job:
    """One job folder of a sweep."""

    name: str
    path: Path
    status: str  # "ok" | "failed" | "incomplete"
    config: dict[str, Any] = field(default_factory=dict)  # flat, dotted keys
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)  # flat, dotted keys
    overrides: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


@dataclass
class Cell:
    """The runs of one combination of group-key values."""

    key: tuple[Any, ...]
    jobs: list[Job]

    @property
    def ok(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "ok"]

    def stats(self, metric: str) -> tuple[float, float, int]:
        """``(mean, std, n)`` over the successful runs that report ``metric`` (std NaN when n < 2)."""
        values = np.array(
            [j.metrics[metric] for j in self.ok if _is_number(j.metrics.get(metric))], dtype=float
        )
        values = values[~np.isnan(values)]
        n = len(values)
        mean = float(values.mean()) if n else math.nan
        std = float(values.std(ddof=1)) if n > 1 else math.nan
        return mean, std, n


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def _read_json(path: Path) -> Any:
    with path.open() as f:
        return json.load(f)


def read_job(path: Path, sweep_dir: Path) -> Job:
    """Read one job folder (tolerating missing files: a job may have died before writing them)."""
    name = path.relative_to(sweep_dir).as_posix().replace("/", "__") or path.name
    job = Job(name=name, path=path, status="incomplete")
    config_file = path / "config.yaml"
    if not config_file.is_file():  # failed before the pipeline saved it: Hydra's unresolved copy
        config_file = path / ".hydra" / "config.yaml"
    if config_file.is_file():
        job.config = flatten(_read_yaml(config_file) or {})
    if (path / ".hydra" / "overrides.yaml").is_file():
        job.overrides = [str(o) for o in _read_yaml(path / ".hydra" / "overrides.yaml") or []]
    if (path / "protocol.json").is_file():
        job.protocol = flatten(_read_json(path / "protocol.json"))
    if (path / "FAILED").is_file():
        job.status = "failed"
        message = (path / "FAILED").read_text().strip().splitlines()
        job.reason = message[0] if message else "FAILED file without a message"
    elif (path / "metrics.json").is_file():
        job.status = "ok"
        job.metrics = {k: v for k, v in _read_json(path / "metrics.json").items() if _is_number(v)}
    else:
        job.reason = "no metrics.json (killed, timed out or still running)"
    return job


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under ``sweep_dir`` (skipping hidden folders and earlier aggregate outputs)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep_dir} does not exist")
    jobs: list[Job] = []

    def visit(folder: Path) -> None:
        if (folder / MARKER).is_file():
            return
        if any((folder / m).is_file() for m in JOB_MARKERS):
            jobs.append(read_job(folder, sweep_dir))
            return  # a job's own sub-folders (tables, checkpoints, wandb, csv) are not jobs
        for child in sorted(folder.iterdir(), key=lambda p: _natural_key(p.name)):
            if child.is_dir() and not child.name.startswith("."):
                visit(child)

    visit(sweep_dir)
    if not jobs:
        raise FileNotFoundError(
            f"no job folders (with {', '.join(JOB_MARKERS)}) under {sweep_dir}; is it a `run.py -m` sweep folder?"
        )
    return jobs


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Config keys whose value differs between jobs, without the seed, paths and per-run folders.

    A key that repeats an earlier key (``model.dim`` = ``compress.dim``), or that is missing in some jobs and
    splits them exactly like an earlier key (``gnn.alpha``, which only ``gnn=gcn`` has, follows ``gnn._target_``),
    is dropped.
    """
    keys = sorted({k for j in jobs for k in j.config}, key=lambda k: (not k.endswith("._target_"), k))
    chosen: list[str] = []
    seen: list[tuple[tuple[Any, ...], tuple[int, ...]]] = []  # (values, partition) of the chosen keys
    out_dirs = [str(j.config.get("paths.output_dir", "\0")) for j in jobs]
    for key in keys:
        if key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
            continue
        values = tuple(_hashable(j.config.get(key)) for j in jobs)
        if len(set(values)) < 2:
            continue
        if all(isinstance(v, str) and d in v for v, d in zip(values, out_dirs, strict=True)):
            continue  # a folder inside the run (checkpoints, logger dirs)
        first: dict[Any, int] = {}
        partition = tuple(first.setdefault(v, len(first)) for v in values)
        if any(values == v or (partition == p and None in values) for v, p in seen):
            continue
        seen.append((values, partition))
        chosen.append(key)
    return chosen


def _sort_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, v, "") if _is_number(v) else (1, 0, str(v)) for v in values)


def group(jobs: Sequence[Job], by: Sequence[str]) -> list[Cell]:
    """Cells of jobs with equal values of the ``by`` keys, sorted by those values (numbers numerically)."""
    cells: dict[tuple[Any, ...], list[Job]] = {}
    for job in jobs:
        key = tuple(_hashable(job.config.get(k)) for k in by)
        cells.setdefault(key, []).append(job)
    return [Cell(key, cells[key]) for key in sorted(cells, key=_sort_key)]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fmt_stat(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "n/a"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _seeds(cell: Cell) -> str:
    return ",".join(_fmt(j.seed) for j in cell.ok)


def write_csv(cells: Sequence[Cell], by: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    """One row per cell: group keys, run counts, seeds, and mean/std/n per metric."""
    header = [*by, "n_runs", "n_failed", "seeds"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_n"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for cell in cells:
            row: list[Any] = [_fmt(v) for v in cell.key]
            row += [len(cell.ok), len(cell.jobs) - len(cell.ok), _seeds(cell)]
            for m in metrics:
                mean, std, n = cell.stats(m)
                row += [repr(mean), repr(std), n]
            writer.writerow(row)


def write_runs_csv(jobs: Sequence[Job], by: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    """One row per job, failed ones included."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "status", "seed", *by, *metrics, "overrides", "reason"])
        for j in jobs:
            values = [repr(j.metrics[m]) if m in j.metrics else "" for m in metrics]
            writer.writerow(
                [j.name, j.status, _fmt(j.seed), *(_fmt(j.config.get(k)) for k in by), *values]
                + [" ".join(j.overrides), j.reason]
            )


def protocol_lines(jobs: Sequence[Job]) -> list[str]:
    """Protocol entries shared by the runs (dataset sizes in one line), then the keys that differ between them."""
    runs = [j for j in jobs if j.protocol] or list(jobs)
    keys = sorted({k for j in runs for k in j.protocol}, key=_natural_key)
    shared, varying = [], []
    for key in keys:
        values = {_hashable(j.protocol.get(key)) for j in runs}
        (shared if len(values) == 1 else varying).append(key)
    first = runs[0].protocol
    lines = [f"- {k}: {_fmt(first.get(k))}" for k in shared if not k.startswith(("drops.", "counts."))]
    sizes = ["users", "items", "train.interactions", "val.interactions", "test.interactions"]
    counts = [f"{s.split('.')[0]}={first[f'counts.{s}']}" for s in sizes if f"counts.{s}" in shared]
    if counts:
        lines.append(f"- counts: {', '.join(counts)} (train/val/test: interactions)")
    if varying:
        lines.append(f"- differs between runs (see runs/<job>/protocol.json): {', '.join(varying)}")
    return lines or ["- no protocol.json in any job"]


def write_markdown(
    cells: Sequence[Cell],
    jobs: Sequence[Job],
    by: Sequence[str],
    metrics: Sequence[str],
    command: str,
    path: Path,
) -> None:
    """``results.md``: the cell table, the protocol and the failed/incomplete jobs."""
    n_ok = sum(j.status == "ok" for j in jobs)
    lines = [
        "# Sweep results",
        "",
        f"Generated by `{command}` from {len(jobs)} job folders ({n_ok} finished, "
        f"{len(jobs) - n_ok} failed or incomplete). Cells: mean ± sample std (ddof=1) over the cell's runs "
        "(seeds); n = finished runs.",
        "",
        "| " + " | ".join([*map(_key_label, by), "n", "failed", "seeds", *metrics]) + " |",
        "|" + "---|" * (len(by) + 3 + len(metrics)),
    ]
    for cell in cells:
        stats = [_fmt_stat(*cell.stats(m)) for m in metrics]
        row = [
            *(_short(v) for v in cell.key),
            str(len(cell.ok)),
            str(len(cell.jobs) - len(cell.ok)),
            _seeds(cell),
        ]
        lines.append("| " + " | ".join(row + stats) + " |")
    lines += ["", "## Protocol", "", *protocol_lines([j for j in jobs if j.status == "ok"] or jobs)]
    bad = [j for j in jobs if j.status != "ok"]
    lines += ["", "## Failed or incomplete jobs", ""]
    if bad:
        lines += ["| job | status | overrides | reason |", "|---|---|---|---|"]
        lines += [f"| {j.name} | {j.status} | {' '.join(j.overrides)} | {j.reason} |" for j in bad]
    else:
        lines.append("None.")
    path.write_text("\n".join(lines) + "\n")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _key_label(key: str) -> str:
    """``gnn._target_`` -> ``gnn`` (its value names the class)."""
    return key.removesuffix("._target_")


def _label(by: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{_key_label(k)}={_short(v)}" for k, v in zip(by, key, strict=True))


def _short(value: Any) -> str:
    text = _fmt(value)
    return text.rsplit(".", 1)[-1] if isinstance(value, str) and text.count(".") >= 2 else text


def plot_bars(cells: Sequence[Cell], by: Sequence[str], metric: str, path: Path) -> bool:
    """Bar chart of ``metric`` (mean, std error bars) per cell; False when no cell has the metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stats = [(cell, *cell.stats(metric)) for cell in cells]
    stats = [s for s in stats if s[3] > 0]
    if not stats:
        return False
    fig = Figure(figsize=(max(4.0, 0.9 * len(stats) + 2), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(stats))
    means = [s[1] for s in stats]
    errs = [0.0 if math.isnan(s[2]) else s[2] for s in stats]
    ax.bar(x, means, yerr=errs, capsize=3, color="tab:blue")
    for xi, s in zip(x, stats, strict=True):
        ax.annotate(f"n={s[3]}", (xi, s[1]), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                    textcoords="offset points")  # fmt: skip
    ax.set_xticks(x, [_label(by, s[0].key) or "all" for s in stats], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (mean ± std over runs)")
    fig.savefig(path, dpi=120)
    return True


def plot_vs_dim(jobs: Sequence[Job], by: Sequence[str], metric: str, path: Path) -> bool:
    """``metric`` against ``compress.dim``, one line per combination of the other ``by`` keys."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [j for j in jobs if j.status == "ok" and _is_number(j.config.get(DIM_KEY)) and metric in j.metrics]
    if len({j.config[DIM_KEY] for j in ok}) < 2:
        return False
    others = [k for k in by if k != DIM_KEY]
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for line in group(ok, others):
        points = group(line.jobs, [DIM_KEY])
        dims = [p.key[0] for p in points]
        stats = [p.stats(metric) for p in points]
        ax.errorbar(dims, [s[0] for s in stats], yerr=[0.0 if math.isnan(s[1]) else s[1] for s in stats],
                    marker="o", capsize=3, label=_label(others, line.key) or None)  # fmt: skip
    dims = sorted({j.config[DIM_KEY] for j in ok})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [_fmt(d) for d in dims])
    ax.minorticks_off()
    ax.set_xlabel(DIM_KEY)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {DIM_KEY} (mean ± std over runs)")
    if others:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    return True


def copy_runs(jobs: Sequence[Job], out: Path) -> None:
    """Copy each job's small result files to ``out/runs/<job>/``."""
    for job in jobs:
        dest = out / "runs" / job.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in COPIED_FILES:
            if (job.path / name).is_file():
                shutil.copy2(job.path / name, dest / name)
        if (job.path / ".hydra" / "overrides.yaml").is_file():
            shutil.copy2(job.path / ".hydra" / "overrides.yaml", dest / "overrides.yaml")


def clear_previous(out: Path) -> None:
    """Remove what an earlier aggregation wrote into ``out`` (its plots and ``runs/`` copies), so that runs and
    plots of an older sweep never sit beside the new table. Only folders holding an ``aggregate.json`` are touched.
    """
    marker = out / MARKER
    if not marker.is_file():
        return
    try:
        previous = json.loads(marker.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{marker} is not valid JSON ({err}); remove it to aggregate into {out}") from err
    for name in previous.get("plots", []):
        (out / Path(name).name).unlink(missing_ok=True)
    if (out / "runs").is_dir():
        shutil.rmtree(out / "runs")


def aggregate(
    sweep_dir: Path,
    out: Path | None = None,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    command: str | None = None,
) -> list[Cell]:
    """Read the sweep, write the summary files into ``out`` (default ``<sweep dir>/aggregate``), return the cells."""
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else sweep_dir / "aggregate"
    jobs = find_jobs(sweep_dir)
    ok = [j for j in jobs if j.status == "ok"]
    for j in jobs:
        if j.status != "ok":
            log.warning("job %s %s: %s", j.name, j.status, j.reason)
    by = list(by) if by is not None else varying_keys(ok or jobs)
    unknown = [k for k in by if not any(k in j.config for j in jobs)]
    if unknown:
        raise KeyError(
            f"--by keys not found in any job's config.yaml: {unknown} (use dotted paths, e.g. gnn.num_layers)"
        )
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if any(m in j.metrics for j in ok)]
    else:
        missing = [m for m in metrics if not any(m in j.metrics for j in ok)]
        if ok and missing:
            raise KeyError(f"--metrics not in any finished job's metrics.json: {missing}")
    command = command or "python -m recsys_gnn.aggregate " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    out.mkdir(parents=True, exist_ok=True)
    clear_previous(out)
    cells = group(jobs, by)
    write_csv(cells, by, metrics, out / "results.csv")
    write_runs_csv(jobs, by, metrics, out / "runs.csv")
    write_markdown(cells, jobs, by, metrics, command, out / "results.md")
    plots = [f"bar_{_safe(m)}.png" for m in metrics if plot_bars(cells, by, m, out / f"bar_{_safe(m)}.png")]
    plots += [f"dim_{_safe(m)}.png" for m in metrics if plot_vs_dim(jobs, by, m, out / f"dim_{_safe(m)}.png")]
    copy_runs(jobs, out)
    if (sweep_dir / "multirun.yaml").is_file():
        shutil.copy2(sweep_dir / "multirun.yaml", out / "multirun.yaml")
    info = {
        "command": command,
        "sweep_dir": str(sweep_dir.resolve()),
        "by": by,
        "metrics": list(metrics),
        "jobs": {"total": len(jobs), "ok": len(ok), "failed": sum(j.status == "failed" for j in jobs)},
        "plots": plots,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / MARKER).write_text(json.dumps(info, indent=2))
    log.info("%d jobs (%d finished) in %d cells -> %s", len(jobs), len(ok), len(cells), out)
    return cells


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a `run.py -m` sweep folder (hydra.sweep.dir)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <sweep_dir>/aggregate)"
    )
    parser.add_argument(
        "--by", type=_csv_list, default=None, help="config keys to group by (default: varying)"
    )
    parser.add_argument(
        "--metrics", type=_csv_list, default=None, help=f"default: {','.join(DEFAULT_METRICS)}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m recsys_gnn.aggregate " + " ".join(shlex.quote(a) for a in argv_list)
    aggregate(args.sweep_dir, out=args.out, by=args.by, metrics=args.metrics, command=command)


if __name__ == "__main__":
    main()
