"""Resumable studies: tune every model on one seed over a small grid, rerun the chosen settings on every seed,
and tabulate converged results side by side.

``python -m recsys_gnn.study experiments/leaderboard/study.yaml [--stage tune|final|table|all] [--jobs 2]
[--datasets video,music] [--models mf_bpr,compressor] [--dry-run]``

The spec (YAML) names the datasets (overrides each), the overrides every job shares, and the models: each with
its overrides, a ``grid`` (config key -> list of values, tried as a full product on ``tune_seed``) and a
``kind`` (``id``, ``text`` or ``other``; the table's last row per dataset divides the best ``text`` NDCG@10 by
the best ``id`` NDCG@10). A model may instead name a ``module`` run as ``python -m <module> <overrides>`` (the
RecBole reference) that writes the same files as ``run.py``.

Every job is one folder ``<runs>/<stage>/<dataset>/<model>/<point>``; a folder that already holds
``metrics.json`` is finished and skipped, so a study can be stopped and resumed at any time, and the table
reports whatever has finished (missing cells are named). Jobs run ``--jobs`` at a time, each with one thread.
The chosen settings (best ``val/ndcg@10`` of the tune jobs) are written to ``<out>/chosen.json``; the final
stage reuses the tune job of the chosen point for ``tune_seed``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

STAGES = ("tune", "final", "table")
KINDS = ("id", "text", "lm", "other")
COPIED = ("config.yaml", "metrics.json", "protocol.json", "run_info.json", "point.json", "FAILED")


@dataclass
class Job:
    """One training job of a study."""

    stage: str
    dataset: str
    model: str
    point: dict[str, Any]
    seed: int
    folder: Path
    argv: list[str]

    @property
    def done(self) -> bool:
        """Finished, and with this job's point: a final folder (``seed=N``) left by another chosen point (the
        point recorded in its ``point.json``) is stale and runs again."""
        if not (self.folder / "metrics.json").is_file():
            return False
        recorded = self.folder / "point.json"
        return not recorded.is_file() or json.loads(recorded.read_text()) == json.loads(
            json.dumps(self.point)
        )


@dataclass
class Spec:
    """A parsed study spec (see the module docstring)."""

    name: str
    out: Path
    runs: Path
    datasets: dict[str, list[str]]
    common: list[str]
    models: dict[str, dict[str, Any]]
    tune_seed: int = 1
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    max_epochs_key: str = "trainer.max_epochs"

    @classmethod
    def load(cls, path: Path) -> Spec:
        raw = yaml.safe_load(Path(path).read_text())
        missing = [k for k in ("name", "out", "runs", "datasets", "models") if k not in raw]
        if missing:
            raise ValueError(f"{path}: study spec lacks {missing}")
        for name, model in raw["models"].items():
            kind = model.get("kind", "other")
            if kind not in KINDS:
                raise ValueError(f"{path}: model {name}: kind must be one of {KINDS}, got {kind!r}")
            bad = [k for k, v in (model.get("grid") or {}).items() if not isinstance(v, list) or not v]
            if bad:
                raise ValueError(f"{path}: model {name}: grid values must be non-empty lists: {bad}")
        return cls(
            name=raw["name"],
            out=Path(raw["out"]),
            runs=Path(raw["runs"]),
            datasets={k: list(v or []) for k, v in raw["datasets"].items()},
            common=list(raw.get("common") or []),
            models=raw["models"],
            tune_seed=int(raw.get("tune_seed", 1)),
            seeds=[int(s) for s in raw.get("seeds", [1, 2, 3])],
        )

    def max_epochs(self) -> int | None:
        for o in self.common:
            if o.startswith(self.max_epochs_key + "="):
                return int(o.split("=", 1)[1])
        return None


def grid_points(grid: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of a ``{key: [values]}`` grid, in a stable order (``[{}]`` for no grid)."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict[str, Any]) -> str:
    """Folder name of a grid point: ``key=value,...`` (``default`` for the empty point)."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "default"


def _argv(spec: Spec, dataset: str, model: str, point: dict[str, Any], seed: int, folder: Path) -> list[str]:
    m = spec.models[model]
    overrides = [
        *spec.datasets[dataset],
        *spec.common,
        *(m.get("overrides") or []),
        *(f"{k}={v}" for k, v in point.items()),
        f"seed={seed}",
        f"hydra.run.dir='{folder}'",  # quoted: point names hold "=" and ","
    ]
    if m.get("module"):
        return [sys.executable, "-m", m["module"], *overrides]
    return [sys.executable, "run.py", *overrides]


def tune_jobs(spec: Spec, datasets: list[str], models: list[str]) -> list[Job]:
    """The tune stage: every grid point of every model on ``tune_seed``."""
    jobs = []
    for d in datasets:
        for m in models:
            for point in grid_points(spec.models[m].get("grid")):
                folder = spec.runs / "tune" / d / m / point_name(point)
                argv = _argv(spec, d, m, point, spec.tune_seed, folder)
                jobs.append(Job("tune", d, m, point, spec.tune_seed, folder, argv))
    return jobs


def read_metrics(folder: Path) -> dict[str, float] | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def choose(spec: Spec, datasets: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """Best tune point per ``dataset/model`` by ``val/ndcg@10`` (ties: the earlier grid point).

    Returns ``{"<dataset>/<model>": {"point": {...}, "val/ndcg@10": v, "tried": n, "finished": n}}`` for the
    cells whose tune jobs have all finished (partially tuned cells are left out and logged).
    """
    chosen = {}
    for job_group in _group(tune_jobs(spec, datasets, models)):
        d, m = job_group[0].dataset, job_group[0].model
        finished = [(j, read_metrics(j.folder)) for j in job_group if j.done]
        if len(finished) < len(job_group):
            if finished:
                log.warning(
                    "%s/%s: %d of %d tune jobs finished; not chosen yet", d, m, len(finished), len(job_group)
                )
            continue
        best = max(finished, key=lambda jm: _num(jm[1].get("val/ndcg@10")))
        chosen[f"{d}/{m}"] = {
            "point": best[0].point,
            "val/ndcg@10": best[1].get("val/ndcg@10"),
            "tried": len(job_group),
            "grid": spec.models[m].get("grid") or {},
        }
    return chosen


def merge_recorded(spec: Spec, chosen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``chosen`` plus the cells of the recorded ``<out>/chosen.json`` that it lacks (their tune job folders
    are gone, e.g. on another machine), each marked ``"recorded": true``; cells no longer in the spec are
    dropped."""
    path = spec.out / "chosen.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    merged = dict(chosen)
    for key, cell in recorded.items():
        d, _, m = key.partition("/")
        if key not in merged and d in spec.datasets and m in spec.models:
            merged[key] = {**cell, "recorded": True}
    return merged


def _group(jobs: list[Job]) -> list[list[Job]]:
    groups: dict[tuple[str, str], list[Job]] = {}
    for j in jobs:
        groups.setdefault((j.dataset, j.model), []).append(j)
    return list(groups.values())


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return -math.inf
    return f if math.isfinite(f) else -math.inf


def final_jobs(
    spec: Spec, chosen: dict[str, dict[str, Any]], datasets: list[str], models: list[str]
) -> list[Job]:
    """Every seed of every chosen setting; ``tune_seed`` points at the tune job of the chosen point."""
    jobs = []
    for d in datasets:
        for m in models:
            c = chosen.get(f"{d}/{m}")
            if c is None:
                continue
            point = c["point"]
            for s in spec.seeds:
                if s == spec.tune_seed:
                    folder = spec.runs / "tune" / d / m / point_name(point)
                else:
                    folder = spec.runs / "final" / d / m / f"seed={s}"
                jobs.append(Job("final", d, m, point, s, folder, _argv(spec, d, m, point, s, folder)))
    return jobs


def run_jobs(jobs: list[Job], n_parallel: int = 2, dry_run: bool = False) -> tuple[int, int]:
    """Run the unfinished ``jobs``, ``n_parallel`` at a time; returns (ran, failed)."""
    todo = [j for j in jobs if not j.done]
    log.info("%d jobs, %d finished, %d to run", len(jobs), len(jobs) - len(todo), len(todo))
    if dry_run:
        for j in todo:
            log.info("would run: %s", " ".join(j.argv))
        return 0, 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    counter = {"done": 0, "failed": 0}
    t0 = time.perf_counter()

    def one(job: Job) -> None:
        job.folder.mkdir(parents=True, exist_ok=True)
        (job.folder / "FAILED").unlink(missing_ok=True)
        (job.folder / "metrics.json").unlink(missing_ok=True)  # a stale job of another point
        (job.folder / "point.json").write_text(json.dumps(job.point, default=str))
        start = time.perf_counter()
        with open(job.folder / "job.log", "w") as out:
            rc = subprocess.run(job.argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        counter["done"] += 1
        if rc != 0 or not job.done:
            counter["failed"] += 1
            if not (job.folder / "FAILED").exists():
                (job.folder / "FAILED").write_text(f"exit status {rc}; see job.log\n")
        log.info(
            "[%d/%d, %.0f s] %s %s/%s %s seed=%d: %s in %.0f s",
            counter["done"],
            len(todo),
            time.perf_counter() - t0,
            job.stage,
            job.dataset,
            job.model,
            point_name(job.point),
            job.seed,
            "ok" if rc == 0 and job.done else f"FAILED (exit {rc}, {job.folder / 'job.log'})",
            time.perf_counter() - start,
        )

    with ThreadPoolExecutor(max_workers=max(1, n_parallel)) as pool:
        list(pool.map(one, todo))
    return len(todo), counter["failed"]


def best_epoch(folder: Path, monitor: str = "val/ndcg@10") -> int | None:
    """The epoch (0-based) with the best ``monitor`` in the job's CSV log, or None without one."""
    path = folder / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    best, best_ep = -math.inf, None
    with open(path) as f:
        for row in csv.DictReader(f):
            v, ep = row.get(monitor), row.get("epoch")
            if v and ep and _num(v) > best:
                best, best_ep = _num(v), int(float(ep))
    return best_ep


TABLE_METRICS = ("test/ndcg@10", "test/recall@10", "test/recall@20")


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def table(
    spec: Spec, chosen: dict[str, dict[str, Any]], datasets: list[str], models: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    """``results.md`` text: per dataset, one row per model (mean ± std over finished seeds), the best epoch,
    epochs run, seconds, runs that hit the epoch maximum, the chosen settings, and the text/id ratio."""
    max_ep = spec.max_epochs()
    lines = [
        f"# Study {spec.name}",
        "",
        f"Generated by `python -m recsys_gnn.study {spec.out / 'study.yaml'} --stage table` from the job folders "
        f"under `{spec.runs}` (copied to `{spec.out / 'runs'}`). Every model was tuned on seed {spec.tune_seed} over "
        "the grid in `study.yaml` (best `val/ndcg@10`; the chosen point in `chosen.json` and below; `(recorded)`: "
        "taken from the recorded `chosen.json` because the tune job folders were not kept), then run on "
        f"seeds {', '.join(map(str, spec.seeds))}. Cells: mean ± sample std over the finished seeds (n). "
        f"Trained models stop early (see `common` in study.yaml); max epochs = {max_ep}: a run that reached it "
        "is flagged `HIT MAX` (not converged).",
        "",
        f"Common overrides: `{' '.join(spec.common)}`",
        "",
    ]
    missing: list[str] = []
    rows_csv = []
    for d in datasets:
        lines += [f"## {d} (`{' '.join(spec.datasets[d])}`)", ""]
        protocol = None
        lines.append(
            "| model | kind | n | NDCG@10 | Recall@10 | Recall@20 | best epoch | epochs run | train s | chosen |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        best_by_kind: dict[str, tuple[float, str]] = {}
        for m in models:
            kind = spec.models[m].get("kind", "other")
            c = chosen.get(f"{d}/{m}")
            if c is None:
                missing.append(f"{d}/{m}: tuning not finished")
                lines.append(f"| {m} | {kind} | 0 | - | - | - | - | - | - | tuning not finished |")
                continue
            jobs = final_jobs(spec, {f"{d}/{m}": c}, [d], [m])
            got = [(j, read_metrics(j.folder)) for j in jobs if j.done]
            for j in jobs:
                if not j.done:
                    missing.append(f"{d}/{m} seed={j.seed}")
            if not got:
                lines.append(f"| {m} | {kind} | 0 | - | - | - | - | - | - | {_chosen_txt(c)} |")
                continue
            if protocol is None:
                p = got[0][0].folder / "protocol.json"
                protocol = json.loads(p.read_text()) if p.is_file() else None
            vals = {
                k: [float(mt[k]) for _, mt in got if k in mt and _num(mt[k]) > -math.inf]
                for k in TABLE_METRICS
            }
            epochs = [mt.get("fit/epochs") for _, mt in got if mt.get("fit/epochs") is not None]
            bests = [b for b in (best_epoch(j.folder) for j, _ in got) if b is not None]
            secs = [mt.get("fit/seconds") for _, mt in got if mt.get("fit/seconds") is not None]
            hit = max_ep is not None and any(int(e) >= max_ep for e in epochs)
            ep_txt = f"{np.mean(epochs):.0f}" + (" HIT MAX" if hit else "") if epochs else "-"
            lines.append(
                f"| {m} | {kind} | {len(got)} | {_mean_std(vals['test/ndcg@10'])} | "
                f"{_mean_std(vals['test/recall@10'])} | {_mean_std(vals['test/recall@20'])} | "
                f"{np.mean(bests) + 1:.0f} | {ep_txt} | {np.mean(secs):.0f} | {_chosen_txt(c)} |"
                if bests and secs
                else f"| {m} | {kind} | {len(got)} | {_mean_std(vals['test/ndcg@10'])} | "
                f"{_mean_std(vals['test/recall@10'])} | {_mean_std(vals['test/recall@20'])} | - | {ep_txt} | "
                f"{np.mean(secs) if secs else float('nan'):.0f} | {_chosen_txt(c)} |"
            )
            if vals["test/ndcg@10"]:
                mean = float(np.mean(vals["test/ndcg@10"]))
                if kind in ("id", "text") and mean > best_by_kind.get(kind, (-1.0, ""))[0]:
                    best_by_kind[kind] = (mean, m)
            rows_csv.append(
                {
                    "dataset": d,
                    "model": m,
                    "kind": kind,
                    "n": len(got),
                    **{f"{k}_mean": (np.mean(v) if v else "") for k, v in vals.items()},
                    **{f"{k}_std": (np.std(v, ddof=1) if len(v) > 1 else "") for k, v in vals.items()},
                    "best_epoch_mean": (np.mean(bests) + 1) if bests else "",
                    "epochs_mean": np.mean(epochs) if epochs else "",
                    "hit_max": hit,
                    "fit_seconds_mean": np.mean(secs) if secs else "",
                    "chosen": point_name(c["point"]),
                }
            )
        if "text" in best_by_kind and "id" in best_by_kind:
            (t, tm), (i, im) = best_by_kind["text"], best_by_kind["id"]
            lines.append(
                f"| **best text / best id NDCG@10** | | | **{t / i:.3f}** ({tm} {t:.4f} / {im} {i:.4f}) "
                "| | | | | | target >= 1.10 |"
            )
        lines.append("")
        if protocol:
            keep = {k: protocol[k] for k in ("dataset", "split", "counts", "filtering") if k in protocol}
            lines += [f"Protocol: `{json.dumps(keep, default=str)}`", ""]
    if missing:
        lines += ["## Missing cells", "", *[f"- {m}" for m in missing], ""]
    return "\n".join(lines) + "\n", rows_csv


def _chosen_txt(cell: dict[str, Any]) -> str:
    """The chosen point of a table row; ``(recorded)`` where it came from a recorded ``chosen.json``."""
    return point_name(cell["point"]) + (" (recorded)" if cell.get("recorded") else "")


def copy_runs(spec: Spec, jobs: list[Job]) -> None:
    """Copy each finished job's config, metrics, protocol and run info to ``<out>/runs/...``."""
    for j in jobs:
        if not (j.done or (j.folder / "FAILED").exists()):
            continue
        dest = spec.out / "runs" / j.dataset / j.model / f"seed={j.seed}"
        dest.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if (j.folder / name).is_file():
                shutil.copy2(j.folder / name, dest / name)
        if (j.folder / "csv" / "metrics.csv").is_file():
            shutil.copy2(j.folder / "csv" / "metrics.csv", dest / "epochs.csv")


def restore_runs(spec: Spec, jobs: list[Job]) -> int:
    """Seed each unfinished job folder from its committed copy under ``<out>/runs`` (written by ``copy_runs``)
    when that copy finished with the same point, so a fresh checkout resumes and re-tabulates a study without
    rerunning what is already recorded. Returns the number of folders restored."""
    n = 0
    for j in jobs:
        src = spec.out / "runs" / j.dataset / j.model / f"seed={j.seed}"
        if j.done or not (src / "metrics.json").is_file():
            continue
        recorded = src / "point.json"
        if recorded.is_file() and json.loads(recorded.read_text()) != json.loads(json.dumps(j.point)):
            continue
        j.folder.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if name != "FAILED" and (src / name).is_file():
                shutil.copy2(src / name, j.folder / name)
        if (src / "epochs.csv").is_file():
            (j.folder / "csv").mkdir(exist_ok=True)
            shutil.copy2(src / "epochs.csv", j.folder / "csv" / "metrics.csv")
        (j.folder / "RESTORED").write_text(f"copied from {src}\n")
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at a time (one thread each)")
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the spec's datasets")
    parser.add_argument("--models", default=None, help="comma-separated subset of the spec's models")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs that would run")
    parser.add_argument(
        "--reuse-chosen",
        action="store_true",
        help="cells whose tune jobs are not all here take their point from the recorded <out>/chosen.json "
        "(marked `recorded` in the table); finished tune jobs still decide where they exist",
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="before running, seed unfinished job folders from the committed copies under <out>/runs that "
        "finished with the same point (their folders get a RESTORED file)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = Spec.load(args.spec)
    datasets = _subset(args.datasets, list(spec.datasets), "dataset")
    models = _subset(args.models, list(spec.models), "model")
    failed = 0
    if args.stage in ("tune", "all"):
        failed += run_jobs(tune_jobs(spec, datasets, models), args.jobs, args.dry_run)[1]
    chosen = choose(spec, list(spec.datasets), list(spec.models))
    if args.reuse_chosen:
        chosen = merge_recorded(spec, chosen)
    spec.out.mkdir(parents=True, exist_ok=True)
    if not args.dry_run:
        (spec.out / "chosen.json").write_text(json.dumps(chosen, indent=2, default=str))
    if args.restore and not args.dry_run:
        restored = restore_runs(spec, final_jobs(spec, chosen, datasets, models))
        log.info("restored %d finished job folders from %s", restored, spec.out / "runs")
    if args.stage in ("final", "all"):
        failed += run_jobs(final_jobs(spec, chosen, datasets, models), args.jobs, args.dry_run)[1]
    if args.stage in ("table", "all") and not args.dry_run:
        all_d, all_m = list(spec.datasets), list(spec.models)
        text, rows = table(spec, chosen, all_d, all_m)
        (spec.out / "results.md").write_text(text)
        if rows:
            with open(spec.out / "results.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        copy_runs(spec, final_jobs(spec, chosen, all_d, all_m))
        log.info("wrote %s", spec.out / "results.md")
    if failed:
        log.error("%d jobs failed (their folders hold FAILED and job.log)", failed)
    return 1 if failed else 0


def _subset(arg: str | None, allowed: list[str], what: str) -> list[str]:
    if not arg:
        return allowed
    got = [a.strip() for a in arg.split(",") if a.strip()]
    bad = [g for g in got if g not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}(s) {bad}; the spec has {allowed}")
    return got


if __name__ == "__main__":
    raise SystemExit(main())
