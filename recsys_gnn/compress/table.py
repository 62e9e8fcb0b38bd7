"""One compression table for a whole study: every model x precision of every run, with the report's columns.

``python -m recsys_gnn.compress.table <sweep dir> [--out experiments/compression] [--threads 1]``

Reads every job folder under the sweep (as :mod:`recsys_gnn.aggregate` does) that holds a ``compression.json``
(written by each training run, see :mod:`recsys_gnn.compress.run_report`) and writes into ``--out``:

* ``report.md``: per dataset, one row per model x precision (fp32 / fp16 / int8 / binary / pq4 / pq8 / pq16 /
  opq...) with train params, serve params and bytes, bytes per item, whether an LM runs at serving time, top-10
  latency p50/p99 for one user (by the served scoring path, column ``scoring``) and batched throughput,
  NDCG@10 / Recall@10 (mean +- std over the seeds of that row), the share of the best fp32 model's NDCG@10 on the
  same dataset, the share of the frozen-LM teacher's NDCG@10 kept (``lm_content`` of the same dataset, averaged
  over seeds), and whether the row is on the quality-vs-bytes Pareto front;
* ``report.csv`` (the same, one line per row) and ``report.json`` (the rows, the command, the jobs read);
* ``quality_vs_bytes_<dataset>.png``: NDCG@10 against bytes per item (log scale), one point per row, the
  Pareto front (no other row has fewer or equal bytes per item and a higher NDCG@10) drawn and ringed.

Sizes come from each run's report (counted from the tensors). Latency is re-measured here, one row after the
other in this process (``--threads`` torch threads), from each run's saved tables (``<run>/tables/``), so every
row of the table is timed under the same conditions; ``--latency recorded`` keeps the numbers each run measured
while it trained instead. Quality is never recomputed: it is read from each run's report (its metrics.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_gnn.aggregate import Job, find_jobs, protocol_lines
from recsys_gnn.compress.quantize import Quantizer
from recsys_gnn.compress.report import REPORT_JSON, measure_latency
from recsys_gnn.compress.run_report import quantized_search
from recsys_gnn.compress.search import resolve_method
from recsys_gnn.tables import load_tables

log = logging.getLogger(__name__)

TEACHER_MODEL = "recsys_gnn.models.baselines.lm_content.LMContent"
LM_ROW_SUFFIX = "+ LM for new items"
COLUMNS = (
    "dataset",
    "model",
    "dim",
    "precision",
    "scoring",
    "n",
    "seeds",
    "train_params",
    "serve_params",
    "serve_bytes",
    "bytes_per_item",
    "lm_at_serving",
    "p50_ms",
    "p99_ms",
    "users_per_s",
    "ndcg@10",
    "ndcg@10_std",
    "recall@10",
    "recall@10_std",
    "ndcg_of_best",
    "ndcg_retained",
    "pareto",
)
PRECISION_ORDER = {  # most bytes per item first
    **{
        name: i
        for i, name in enumerate(("fp32", "fp16", "int8", "pq16", "opq16", "pq8", "opq8", "pq4", "opq4"))
    },
    "binary": 9,
}


def _label(job: Job) -> str:
    """Model label of a job: the model class, plus ``gnn``/``graph`` for GNN models, plus the teacher."""
    target = str(job.config.get("model._target_", "?")).rsplit(".", 1)[-1]
    parts = [target]
    if job.config.get("gnn._target_") and target not in ("LightGCNId",):
        parts.append(str(job.config["gnn._target_"]).rsplit(".", 1)[-1])
    teacher = job.config.get("model.teacher")
    if teacher:  # a run folder's name without its seed, so that the seeds of one student share a row
        name = re.sub(r"[_,-]?seed[=_]?\d+", "", Path(str(teacher)).name) or Path(str(teacher)).name
        parts.append(f"teacher={name}")
    return " ".join(parts)


def job_rows(job: Job, remeasure: bool, repeats: int) -> list[dict[str, Any]]:
    """The rows of one job's compression report that belong to the job's own model (plus the LM-at-serving row
    of the teacher's own job), with latency re-measured from its tables when ``remeasure``."""
    report = json.loads((job.path / REPORT_JSON).read_text())
    is_teacher = job.config.get("model._target_") == TEACHER_MODEL
    tables = None
    if remeasure:
        if not (job.path / "tables").is_dir():
            raise FileNotFoundError(
                f"{job.path / 'tables'} is missing: cannot re-measure latency for {job.name} "
                "(use --latency recorded, or rerun the job)"
            )
        tables = load_tables(job.path / "tables")
    rows = []
    own = [r for r in report["rows"] if not r["name"].startswith(str(report.get("teacher") or "\0"))]
    if is_teacher:  # the frozen-LM job: its own rows, and the row that counts the LM run for new items
        own += [r for r in report["rows"] if r["name"].endswith(LM_ROW_SUFFIX)]
    timed: dict[str, dict[str, Any]] = {}  # per scheme: rows on the same tables are timed once
    for r in own:
        scheme = r.get("quantization") or "fp32"
        latency = r.get("latency") or {}
        if tables is not None:
            if scheme not in timed:
                q = Quantizer(scheme)
                search = quantized_search(q, q.encode(tables.user_emb), q.encode_items(tables.item_emb))
                timed[scheme] = measure_latency(None, len(tables.user_ids), repeats=repeats, search_fn=search)
            latency = timed[scheme]
        lm_row = r["name"].endswith(LM_ROW_SUFFIX)
        rows.append(
            {
                "dataset": job.config.get("dataset.name"),
                "model": _label(job) + (f" {LM_ROW_SUFFIX}" if lm_row else ""),
                "is_teacher": is_teacher and not lm_row,
                "dim": r.get("dim"),
                "precision": scheme,
                "scoring": r.get("scoring") or (resolve_method(scheme) if tables is not None else None),
                "seed": job.seed,
                "train_params": r.get("train_params"),
                "serve_params": r.get("serve_params"),
                "serve_bytes": r.get("serve_bytes"),
                "bytes_per_item": r.get("bytes_per_item"),
                "lm_at_serving": bool(r.get("lm_at_serving")),
                "p50_ms": latency.get("p50_ms"),
                "p99_ms": latency.get("p99_ms"),
                "users_per_s": latency.get("throughput_users_per_s"),
                "torch_threads": latency.get("torch_threads"),
                "ndcg@10": r.get("ndcg@10"),
                "recall@10": r.get("recall@10"),
                "job": job.name,
            }
        )
    return rows


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def merge_seeds(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, model, dim, precision): quality mean +- std over seeds, sizes and latency means.

    ``ndcg_retained`` divides the row's mean NDCG@10 by the mean NDCG@10 of the dataset's ``lm_content`` teacher
    (over the teacher's seeds); None when the dataset has no teacher job. ``ndcg_of_best`` divides it by the best
    mean NDCG@10 of any fp32 row of the dataset (rows with an LM at serving excluded); ``pareto`` marks the rows
    that no other row of the dataset beats in both bytes per item (fewer or equal) and NDCG@10 (higher).
    """
    teacher: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["is_teacher"] and r["precision"] == "fp32" and r["ndcg@10"] is not None:
            teacher[r["dataset"]].append(float(r["ndcg@10"]))
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["dataset"], r["model"], r["dim"], r["precision"])].append(r)
    out = []
    for (dataset, model, dim, precision), group in cells.items():
        sizes = {(g["serve_bytes"], g["serve_params"]) for g in group}
        if len(sizes) > 1:
            log.warning(
                "%s %s %s: serve sizes differ between seeds %s; showing the mean",
                dataset,
                model,
                precision,
                sizes,
            )
        ndcg, ndcg_std = _mean_std([g["ndcg@10"] for g in group])
        recall, recall_std = _mean_std([g["recall@10"] for g in group])
        ref = float(np.mean(teacher[dataset])) if teacher.get(dataset) else None
        out.append(
            {
                "dataset": dataset,
                "model": model,
                "dim": dim,
                "precision": precision,
                "scoring": group[0].get("scoring"),
                "n": len(group),
                "seeds": ",".join(str(g["seed"]) for g in sorted(group, key=lambda g: str(g["seed"]))),
                "train_params": _mean_std([g["train_params"] for g in group])[0],
                "serve_params": _mean_std([g["serve_params"] for g in group])[0],
                "serve_bytes": _mean_std([g["serve_bytes"] for g in group])[0],
                "bytes_per_item": _mean_std([g["bytes_per_item"] for g in group])[0],
                "lm_at_serving": any(g["lm_at_serving"] for g in group),
                "p50_ms": _mean_std([g["p50_ms"] for g in group])[0],
                "p99_ms": _mean_std([g["p99_ms"] for g in group])[0],
                "users_per_s": _mean_std([g["users_per_s"] for g in group])[0],
                "ndcg@10": ndcg,
                "ndcg@10_std": ndcg_std,
                "recall@10": recall,
                "recall@10_std": recall_std,
                "ndcg_retained": None if ref in (None, 0.0) or ndcg is None else ndcg / ref,
            }
        )
    best: dict[str, float] = {}
    for r in out:
        if r["precision"] == "fp32" and not r["lm_at_serving"] and r["ndcg@10"] is not None:
            best[r["dataset"]] = max(best.get(r["dataset"], float("-inf")), r["ndcg@10"])
    for r in out:
        ref = best.get(r["dataset"])
        r["ndcg_of_best"] = None if not ref or r["ndcg@10"] is None else r["ndcg@10"] / ref
        r["pareto"] = (
            r["ndcg@10"] is not None
            and bool(r["bytes_per_item"])
            and not any(
                o is not r
                and o["dataset"] == r["dataset"]
                and o["ndcg@10"] is not None
                and o["bytes_per_item"]
                and o["bytes_per_item"] <= r["bytes_per_item"]
                and o["ndcg@10"] > r["ndcg@10"]
                for o in out
            )
        )
    out.sort(
        key=lambda r: (
            str(r["dataset"]),
            -1 if TEACHER_MODEL.rsplit(".", 1)[-1] in r["model"] else 0,
            r["model"],
            r["dim"] or 0,
            PRECISION_ORDER.get(r["precision"], 10),
        )
    )
    return out


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


def _quality(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def format_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: one table per dataset."""
    lines: list[str] = []
    for dataset in sorted({str(r["dataset"]) for r in rows}):
        lines += [
            f"### {dataset}",
            "",
            "| model | dim | precision | n | train params | serve params | serve bytes | bytes/item | serve MB "
            "| LM at serving | scoring | top-10 p50 ms | top-10 p99 ms | users/s (batch) | NDCG@10 | Recall@10 "
            "| % of best fp32 NDCG@10 | % of LM NDCG@10 | Pareto |",
            "|" + "---|" * 19,
        ]
        for r in rows:
            if str(r["dataset"]) != dataset:
                continue
            cells = [
                r["model"],
                _fmt(r["dim"], "d"),
                r["precision"],
                str(r["n"]),
                _fmt(r["train_params"], ",.0f"),
                _fmt(r["serve_params"], ",.0f"),
                _fmt(r["serve_bytes"], ",.0f"),
                _fmt(r["bytes_per_item"], ".1f"),
                _fmt(None if r["serve_bytes"] is None else r["serve_bytes"] / 1e6, ".3f"),
                _fmt(r["lm_at_serving"], ""),
                r.get("scoring") or "n/a",
                _fmt(r["p50_ms"], ".3f"),
                _fmt(r["p99_ms"], ".3f"),
                _fmt(r["users_per_s"], ",.0f"),
                _quality(r["ndcg@10"], r["ndcg@10_std"]),
                _quality(r["recall@10"], r["recall@10_std"]),
                _fmt(None if r["ndcg_of_best"] is None else 100 * r["ndcg_of_best"], ".0f"),
                _fmt(None if r["ndcg_retained"] is None else 100 * r["ndcg_retained"], ".0f"),
                "yes" if r["pareto"] else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_quality_vs_bytes(rows: Sequence[dict[str, Any]], dataset: str, path: Path) -> bool:
    """NDCG@10 against bytes per item (log x), one marker per model x precision; False if nothing to plot."""
    from recsys_gnn.plots import pyplot

    plt = pyplot()
    pts = [r for r in rows if r["dataset"] == dataset and r["ndcg@10"] is not None and r["bytes_per_item"]]
    if not pts:
        return False
    markers = {"fp32": "o", "fp16": "s", "int8": "^", "binary": "x", "pq4": "v", "pq8": "D", "pq16": "P"}
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for r in pts:
        ax.errorbar(
            r["bytes_per_item"],
            r["ndcg@10"],
            yerr=r["ndcg@10_std"] or 0.0,
            marker=markers.get(r["precision"], "o"),
            linestyle="none",
        )
        ax.annotate(
            f"{r['model']} {r['dim']}d {r['precision']}", (r["bytes_per_item"], r["ndcg@10"]), fontsize=6
        )
    front = sorted((r for r in pts if r.get("pareto")), key=lambda r: r["bytes_per_item"])
    if front:
        xs, ys = [r["bytes_per_item"] for r in front], [r["ndcg@10"] for r in front]
        ax.step(xs, ys, where="post", color="tab:red", linewidth=1, label="Pareto front")
        ax.scatter(xs, ys, s=120, facecolors="none", edgecolors="tab:red")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per item (serving tables)")
    ax.set_ylabel("test NDCG@10")
    ax.set_title(f"{dataset}: quality vs. bytes per item")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def build_table(
    sweep_dir: Path,
    out: Path,
    remeasure: bool = True,
    threads: int | None = 1,
    repeats: int = 200,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Read the sweep's runs, write ``report.md/.csv/.json`` and the plots into ``out``; return the merged rows."""
    jobs = find_jobs(Path(sweep_dir))
    with_report = [j for j in jobs if j.status == "ok" and (j.path / REPORT_JSON).is_file()]
    skipped = [j for j in jobs if j not in with_report]
    for j in skipped:
        log.warning(
            "job %s (%s) has no compression report: not in the table (%s)", j.name, j.status, j.reason
        )
    if not with_report:
        raise FileNotFoundError(f"no finished job with {REPORT_JSON} under {sweep_dir}")
    if threads:
        torch.set_num_threads(int(threads))
    raw: list[dict[str, Any]] = []
    for i, job in enumerate(with_report, 1):
        log.info("[%d/%d] %s", i, len(with_report), job.name)
        raw += job_rows(job, remeasure=remeasure, repeats=repeats)
    rows = merge_seeds(raw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in COLUMNS})
    command = command or "python -m recsys_gnn.compress.table " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    latency_note = (
        f"re-measured here from each run's tables, one row after another, torch threads = {torch.get_num_threads()}"
        if remeasure
        else "as each run measured it while training (see the runs' compression.json for threads)"
    )
    plots = []
    for dataset in sorted({str(r["dataset"]) for r in rows}):
        name = f"quality_vs_bytes_{dataset}.png"
        if plot_quality_vs_bytes(rows, dataset, out / name):
            plots.append(name)
    failed = [f"- {j.name}: {j.status} ({j.reason})" for j in skipped]
    md = [
        "# Compression table",
        "",
        f"Generated by `{command}` from {len(with_report)} runs ({len(skipped)} without a report, listed below).",
        "",
        "Columns: params/bytes counted from the tensors needed to serve (user + item tables, int8 scales, LM "
        "weights where an LM runs per request); bytes/item counts the item side only; latency: top-10 over all "
        f"items for one random user (p50/p99 of 200 requests) and batched throughput (256 users), CPU, {latency_note}; "
        "quality: full-ranking test NDCG@10 / Recall@10 of each run (quantised rows ranked with their quantised "
        "scores), mean ± sample std over the row's n seeds; % of best fp32: NDCG@10 over the best fp32 row of the "
        "dataset (no LM at serving); % of LM: NDCG@10 over that of the frozen LM (lm_content) on the same dataset; "
        "Pareto: no row has fewer or equal bytes/item and a higher NDCG@10. serve MB = serve bytes / 1e6 (PQ: "
        "user table fp32 + item codes + shared codebooks; bytes/item counts the codes only). scoring: the served "
        "path timed (decoded = table decoded once to fp32 at load, RAM = fp32 size; faiss = faiss over the codes; "
        "reference = the quantised product per request).",
        "",
        *format_table(rows),
        "## Protocol",
        "",
    ]
    for dataset in sorted({str(r["dataset"]) for r in rows}):
        md += [
            f"{dataset}:",
            *protocol_lines([j for j in with_report if str(j.config.get("dataset.name")) == dataset]),
            "",
        ]
    md += [
        "Runs without a compression report:" if failed else "Every finished run had a compression report.",
        *failed,
        "",
    ]
    (out / "report.md").write_text("\n".join(md))
    info = {
        "command": command,
        "sweep_dir": str(Path(sweep_dir).resolve()),
        "latency": latency_note,
        "jobs": [j.name for j in with_report],
        "skipped": [j.name for j in skipped],
        "plots": plots,
        "rows": rows,
        "per_seed_rows": raw,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "report.json").write_text(json.dumps(info, indent=2, default=str))
    log.info("%d rows from %d runs -> %s", len(rows), len(with_report), out / "report.md")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a sweep folder holding run folders with compression.json"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <sweep_dir>/aggregate)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (default 1)")
    parser.add_argument("--repeats", type=int, default=200, help="timed one-user requests per row")
    parser.add_argument(
        "--latency",
        choices=("remeasure", "recorded"),
        default="remeasure",
        help="re-measure every row here (default) or keep each run's own measurement",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv_list = list(sys.argv[1:] if argv is None else argv)
    build_table(
        args.sweep_dir,
        args.out if args.out is not None else args.sweep_dir / "aggregate",
        remeasure=args.latency == "remeasure",
        threads=args.threads,
        repeats=args.repeats,
        command="python -m recsys_gnn.compress.table " + " ".join(shlex.quote(a) for a in argv_list),
    )


if __name__ == "__main__":
    main()
