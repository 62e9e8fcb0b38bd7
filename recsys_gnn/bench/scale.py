"""Scale curve: training-epoch time, full-ranking evaluation time and peak memory against dataset size.

``python -m recsys_gnn.bench --scale`` (or ``python -m recsys_gnn.bench.scale [options]``) trains each model on
``dataset=synthetic`` at 10^5, 10^6 and 10^7 interactions (items and users = interactions / 10, so 10^4 to
10^6 of each; 384-d unit item vectors), each (size, model) point in its own subprocess so that peak memory
(the kernel's ``VmHWM``) belongs to that point alone. Per point:

- ``data``: generate + preprocess + split (the first model at a size; the second loads the pickled result);
- ``setup``: model, graph and data module as the pipeline builds them;
- ``train``: ``steps`` timed training steps on a Lightning ``Trainer`` after one untimed step, stopped early
  after ``step_budget`` seconds (at least two timed steps); the epoch time is the mean step time (from one
  ``on_train_batch_end`` to the next, so batch sampling is included) times the steps of a full epoch;
- ``eval``: ``embed()`` + fold-in once, then ``model.score`` + ``FullRankingMetric.update`` for a seeded
  sample of ``eval_users`` validation users; the full evaluation is extrapolated as embed time + per-user
  time x validation users.

With ``--fanout`` (one number for every layer, or one per layer: ``10`` or ``10,10``; -1 = all neighbours) both
models get ``model.fanout`` and train on neighbour samples of each batch (:mod:`recsys_gnn.graph.sampled`);
evaluation stays full-graph. The resolved per-layer fanout of each model is recorded (``full`` without).

A point is stopped when its resident memory passes ``--mem-cap-gb`` (default: 2 GB under the memory available
when the run starts, at most 20 GB), and that is recorded with the phase where it happened, as are
``MemoryError`` and a per-point ``--timeout``. Results: ``<out>/<name>.md``, ``.csv``, ``.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import pickle
import resource
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

log = logging.getLogger("recsys_gnn.bench.scale")

SIZES = (10**5, 10**6, 10**7)
MODELS = ("lightgcn_id", "compressor")
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
CSV_FIELDS = (
    "interactions",
    "users",
    "items",
    "model",
    "fanout",
    "status",
    "train_pairs",
    "batch_size",
    "steps_per_epoch",
    "timed_steps",
    "step_s",
    "epoch_s",
    "epoch_vs_linear",
    "eval_users",
    "eval_sampled",
    "eval_embed_s",
    "eval_s",
    "data_s",
    "setup_s",
    "peak_rss_gb",
    "peak_phase",
    "others_cores",
)


def point_sizes(n: int) -> dict[str, int]:
    """Users and items of the point with ``n`` interactions (each ``n / 10``)."""
    return {"interactions": int(n), "users": int(n) // 10, "items": int(n) // 10}


def default_mem_cap_gb() -> float:
    """2 GB under the memory available now (other users of the machine keep theirs), at most 20 GB."""
    return round(min(20.0, psutil.virtual_memory().available / 2**30 - 2.0), 1)


# -- one point, in its own process ------------------------------------------------------------------------------
class _Guard(threading.Thread):
    """Ends the process (exit code 3) when its RSS passes ``cap_gb``, after writing where that happened."""

    def __init__(self, cap_gb: float, result: dict[str, Any], out: Path) -> None:
        super().__init__(daemon=True)
        self.cap = cap_gb * 2**30
        self.result, self.out = result, out
        self.phase = "start"

    def run(self) -> None:
        proc = psutil.Process()
        while True:
            rss = proc.memory_info().rss
            if rss > self.cap:
                self.result.update(
                    status=f"memory cap {self.cap / 2**30:.1f} GB passed in {self.phase}",
                    peak_rss_gb=rss / 2**30,
                    peak_phase=self.phase,
                )
                self.out.write_text(json.dumps(self.result, indent=2, default=float))
                os._exit(3)
            time.sleep(0.05)


def parse_fanout(text: str) -> int | list[int]:
    """``"10"`` -> 10 (every layer), ``"10,10"`` -> [10, 10] (one per layer); -1 = all neighbours."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fanout must be integers separated by commas, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def fanout_override(fanout: int | list[int] | None) -> list[str]:
    """The Hydra override that sets ``model.fanout`` (none without a fanout)."""
    if fanout is None:
        return []
    value = fanout if isinstance(fanout, int) else "[" + ",".join(str(f) for f in fanout) + "]"
    return [f"model.fanout={value}"]


def fanout_label(fanout: list[int] | None) -> str:
    """``"10,10"`` for a resolved per-layer fanout, ``"full"`` for full-graph training."""
    return "full" if fanout is None else ",".join("all" if f == -1 else str(f) for f in fanout)


def _compose(n: int, model: str, text_dim: int, work: Path, seed: int, fanout: int | list[int] | None = None):
    from hydra import compose, initialize_config_dir

    s = point_sizes(n)
    overrides = [
        "dataset=synthetic",
        f"dataset.reader.n_users={s['users']}",
        f"dataset.reader.n_items={s['items']}",
        f"dataset.reader.n_interactions={s['interactions']}",
        f"dataset.reader.text_dim={text_dim}",
        f"dataset.reader.seed={seed}",
        f"model={model}",
        "logger=none",
        f"paths.output_dir={work / 'runs'}",
        f"paths.cache_dir={work / 'cache'}",
        *fanout_override(fanout),
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _step_timer(steps: int, budget_s: float):
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        """Seconds between consecutive ``on_train_batch_end`` calls (the first step is the untimed warm-up)."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._last: float | None = None
            self._t0 = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = time.perf_counter()
            if self._last is None:
                self._t0 = now
            else:
                self.times.append(now - self._last)
            self._last = now
            if len(self.times) >= steps or (len(self.times) >= 2 and now - self._t0 > budget_s):
                trainer.should_stop = True

    return StepTimer()


def run_point(args: argparse.Namespace) -> int:
    """Measure one (size, model) point and write its JSON (see the module docstring)."""
    import pytorch_lightning as pl
    import torch

    from recsys_gnn.bench.machine import measure_phase
    from recsys_gnn.bench.phases import build_module, quiet_trainer
    from recsys_gnn.data.datamodule import RankingUsers
    from recsys_gnn.eval.ranking import FullRankingMetric
    from recsys_gnn.pipeline import load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.json)
    work = Path(args.work_dir)
    result: dict[str, Any] = {**point_sizes(args.point), "model": args.model, "status": "running"}
    guard = _Guard(args.mem_cap_gb, result, out)
    guard.start()
    peaks: dict[str, float] = {}
    others: list[float] = []

    def done(phase: str, st) -> None:
        peaks[phase] = st.rss_peak_mb / 1024
        others.append(st.others_cores)
        result[f"{phase}_s"] = st.wall_s

    try:
        cfg = _compose(args.point, args.model, args.text_dim, work, args.seed, args.fanout)
        pl.seed_everything(cfg.seed, workers=True)
        cache = work / f"data-{args.point}-{args.text_dim}-{args.seed}.pkl"
        guard.phase = "data"
        with measure_phase() as st:
            if cache.exists():
                data = pickle.loads(cache.read_bytes())
                result["data_from"] = "pickle of the first model's data"
            else:
                data = load_data(cfg)
                cache.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
                result["data_from"] = "generate + preprocess + split"
        done("data", st)
        result["train_pairs"] = len(data.train)
        guard.phase = "setup"
        with measure_phase() as st:
            module, datamodule = build_module(cfg, data)
        done("setup", st)
        result["fanout"] = fanout_label(getattr(module.model, "fanout", None))
        batch = int(cfg.data.batch_size)
        steps_per_epoch = -(-len(data.train) // batch)
        result.update(batch_size=batch, steps_per_epoch=steps_per_epoch)

        guard.phase = "train"
        timer = _step_timer(args.steps, args.step_budget)
        trainer = quiet_trainer(
            cfg,
            callbacks=[timer],
            max_epochs=1,
            limit_train_batches=min(args.steps + 1, steps_per_epoch),
            limit_val_batches=0,
        )
        with measure_phase() as st:
            trainer.fit(module, datamodule=datamodule)
        done("train", st)
        step_s = float(np.mean(timer.times)) if timer.times else float("nan")
        result.update(timed_steps=len(timer.times), step_s=step_s, epoch_s=step_s * steps_per_epoch)

        guard.phase = "eval"
        with measure_phase() as st:
            model = module.model.eval()
            t0 = time.perf_counter()
            with torch.no_grad():
                emb = model.embed()
                emb = model.fold_in(emb, module.histories["val"], module.n_users)
            embed_s = time.perf_counter() - t0
            users = RankingUsers(*datamodule.stage_matrices("val"))
            rng = np.random.default_rng(args.seed)
            m = min(args.eval_users, len(users))
            sample = np.sort(rng.choice(len(users), size=m, replace=False))
            metric = FullRankingMetric(ks=module.ks, num_items=module.n_items)
            t0 = time.perf_counter()
            with torch.no_grad():
                for start in range(0, m, int(cfg.data.eval_batch_size)):
                    b = users.__getitems__(sample[start : start + int(cfg.data.eval_batch_size)].tolist())
                    metric.update(model.score(b["user"], emb), b["targets"], b["mask"])
                metric.compute()
            per_user = (time.perf_counter() - t0) / max(m, 1)
        done("eval", st)
        result.update(
            eval_users=len(users),
            eval_sampled=m,
            eval_embed_s=embed_s,
            eval_s=embed_s + per_user * len(users),
            status="ok",
        )
    except MemoryError as err:
        result["status"] = f"MemoryError in {guard.phase}: {str(err)[:200]}"
    except RuntimeError as err:
        if "alloc" not in str(err).lower():
            raise
        result["status"] = f"allocation failed in {guard.phase}: {str(err)[:200]}"
    if peaks:
        phase = max(peaks, key=peaks.__getitem__)
        result.setdefault("peak_rss_gb", peaks[phase])
        result.setdefault("peak_phase", phase)
        result["peak_rss_gb_by_phase"] = peaks
    result["peak_rss_gb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["others_cores"] = float(np.mean(others)) if others else float("nan")
    result["threads"] = torch.get_num_threads()
    out.write_text(json.dumps(result, indent=2, default=float))
    return 0


# -- the curve ---------------------------------------------------------------------------------------------------
def run_curve(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every (size, model) point in a subprocess and collect their results."""
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        for model in args.models:
            js = work / f"point-{n}-{model}.json"
            js.unlink(missing_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "recsys_gnn.bench.scale",
                "--point",
                str(n),
                "--models",
                model,
                "--json",
                str(js),
                "--work-dir",
                str(work),
                "--steps",
                str(args.steps),
                "--step-budget",
                str(args.step_budget),
                "--eval-users",
                str(args.eval_users),
                "--text-dim",
                str(args.text_dim),
                "--mem-cap-gb",
                str(args.mem_cap_gb),
                "--seed",
                str(args.seed),
                *(["--threads", str(args.threads)] if args.threads else []),
                *([f"--fanout={args.fanout_text}"] if args.fanout is not None else []),
            ]
            log.info("point %d interactions, %s: %s", n, model, shlex.join(cmd))
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, timeout=args.timeout, capture_output=True, text=True)
                rc, tail = proc.returncode, (proc.stderr or "")[-2000:]
            except subprocess.TimeoutExpired:
                rc, tail = None, ""
            row: dict[str, Any] = (
                json.loads(js.read_text()) if js.exists() else {**point_sizes(n), "model": model}
            )
            if rc is None:
                row["status"] = f"timeout after {args.timeout} s in {row.get('status', 'start')}"
            elif rc not in (0, 3) or row.get("status") in (None, "running"):
                killed = rc is not None and rc < 0
                row["status"] = f"{'killed by signal ' + str(-rc) if killed else 'exit ' + str(rc)}"
                log.error("point %d %s failed:\n%s", n, model, tail)
            row["point_wall_s"] = time.perf_counter() - t0
            log.info("point %d %s: %s", n, model, row.get("status"))
            rows.append(row)
    for model in args.models:
        ok = [r for r in rows if r["model"] == model and r.get("status") == "ok"]
        if ok:
            base = min(ok, key=lambda r: r["interactions"])
            for r in ok:
                r["epoch_vs_linear"] = (r["epoch_s"] / base["epoch_s"]) / (
                    r["interactions"] / base["interactions"]
                )
    return rows


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _hms(s: Any) -> str:
    if not isinstance(s, float) or not np.isfinite(s):
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def largest_trained(rows: Sequence[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """The largest point of ``model`` whose training steps ran (status ok, or stopped later, in eval)."""
    trained = [r for r in rows if r["model"] == model and r.get("timed_steps")]
    return max(trained, key=lambda r: r["interactions"]) if trained else None


def markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The report: settings, the table, the largest trained size per model and what stopped the next."""
    lines = [
        "# Scale curve (dataset=synthetic)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['mem_gb']:.0f} GB RAM (shared: "
        f"`others` = mean cores busy with other processes during the point); torch threads {meta['threads']}; "
        f"memory cap per point {meta['mem_cap_gb']} GB.  ",
        "Training: "
        + (
            "full-graph propagation at every step.  "
            if meta.get("fanout") is None
            else f"neighbour-sampled (`--fanout {meta['fanout']}`: per-layer fanout in the table; "
            "evaluation stays full-graph).  "
        ),
        f"Data: items = users = interactions / 10, Zipf item popularity (alpha 0.8) and user activity (0.6), "
        f"{meta['text_dim']}-d random unit item vectors, random 8:1:1 split per user.  ",
        f"Epoch = mean of up to {meta['steps']} timed steps (after 1 untimed; stopped after "
        f"{meta['step_budget']:.0f} s with >= 2) x steps per epoch. Eval = embed + fold-in once + "
        f"per-user time over a seeded sample of {meta['eval_users']} validation users x all validation users "
        "(full ranking, 3 cut-offs). Peak = kernel VmHWM reset per phase, max over phases (data, setup, "
        "train, eval).",
        "",
        "| interactions | users | items | model | fanout | status | steps/epoch (batch) | timed steps | step | "
        "epoch (est.) | epoch / linear | eval (est.) | eval users (sampled) | peak RSS GB (phase) | others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    _fmt(r["interactions"]),
                    _fmt(r["users"]),
                    _fmt(r["items"]),
                    r["model"],
                    str(r.get("fanout", "-")),
                    str(r.get("status")),
                    f"{_fmt(r.get('steps_per_epoch'))} ({_fmt(r.get('batch_size'))})",
                    _fmt(r.get("timed_steps")),
                    _hms(r.get("step_s")),
                    _hms(r.get("epoch_s")),
                    _fmt(r.get("epoch_vs_linear"), 2),
                    _hms(r.get("eval_s")),
                    f"{_fmt(r.get('eval_users'))} ({_fmt(r.get('eval_sampled'))})",
                    f"{_fmt(r.get('peak_rss_gb'), 3)} ({r.get('peak_phase', '-')})",
                    _fmt(r.get("others_cores"), 2),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "`epoch / linear` = (epoch time / smallest size's) / (interactions / smallest size's): 1 = linear.",
        "",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        best = largest_trained(rows, model)
        failed = [r for r in rows if r["model"] == model and r.get("status") != "ok"]
        text = f"- **{model}**: largest size that trains here: "
        text += f"{best['interactions']:,} interactions" if best else "none"
        if failed:
            text += "; " + "; ".join(f"{r['interactions']:,}: {r.get('status')}" for r in failed)
        lines.append(text)
    return "\n".join(lines) + "\n"


def write_outputs(rows: Sequence[dict[str, Any]], meta: dict[str, Any], out: Path, name: str) -> list[Path]:
    """``<out>/<name>.md``, ``.csv``, ``.json`` and ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    md, cs, js, png = (out / f"{name}.{ext}" for ext in ("md", "csv", "json", "png"))
    md.write_text(markdown(rows, meta))
    with cs.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in CSV_FIELDS})
    js.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=2, default=float))
    plot(rows, png)
    return [md, cs, js, png]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Three log-log panels against interactions: epoch time, evaluation time, peak RSS (with a linear guide)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("epoch_s", "epoch time (s, est.)"),
        ("eval_s", "full-ranking eval (s, est.)"),
        ("peak_rss_gb", "peak RSS (GB)"),
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        for model in dict.fromkeys(r["model"] for r in rows):
            pts = [
                (r["interactions"], r[key]) for r in rows if r["model"] == model and r.get(key) is not None
            ]
            pts = [(x, y) for x, y in pts if np.isfinite(y)]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            line = ax.plot(xs, ys, "o-", label=model)[0]
            if key != "peak_rss_gb" and len(xs) > 1:
                ax.plot(xs, [ys[0] * x / xs[0] for x in xs], ":", color=line.get_color(), alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(title="dotted: linear from the smallest size", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recsys_gnn.bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=lambda t: [int(float(x)) for x in t.split(",")], default=list(SIZES))
    p.add_argument("--models", type=lambda t: [x for x in t.split(",") if x], default=list(MODELS))
    p.add_argument("--steps", type=int, default=20, help="timed training steps per point (at most)")
    p.add_argument(
        "--step-budget", type=float, default=120.0, help="seconds of timed steps per point (at most)"
    )
    p.add_argument("--eval-users", type=int, default=1024, help="validation users scored per point")
    p.add_argument("--text-dim", type=int, default=384)
    p.add_argument(
        "--mem-cap-gb", type=float, default=None, help="RSS cap per point (default: see module doc)"
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per point")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/recsys_gnn_scale"))
    p.add_argument("--out", type=Path, default=Path("experiments/bench"))
    p.add_argument("--name", default="scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument(
        "--fanout",
        type=parse_fanout,
        default=None,
        help="model.fanout of both models: one number for every layer or one per layer (10 or 10,10; -1 = all "
        "neighbours); default: full-graph training",
    )
    p.add_argument("--point", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def _as_list(fanout: int | list[int]) -> list[int]:
    return [fanout] if isinstance(fanout, int) else list(fanout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scale curve (or, with the internal ``--point``, one point) and write the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.fanout_text = None if args.fanout is None else ",".join(map(str, _as_list(args.fanout)))
    if args.mem_cap_gb is None:
        args.mem_cap_gb = default_mem_cap_gb()
    if args.point is not None:
        args.model = args.models[0]
        return run_point(args)
    import torch

    from recsys_gnn.bench.machine import cpu_model

    rows = run_curve(args)
    meta = {
        "command": "python -m recsys_gnn.bench.scale "
        + shlex.join(list(argv) if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "mem_gb": psutil.virtual_memory().total / 2**30,
        "threads": args.threads or torch.get_num_threads(),
        "mem_cap_gb": args.mem_cap_gb,
        "text_dim": args.text_dim,
        "steps": args.steps,
        "step_budget": args.step_budget,
        "eval_users": args.eval_users,
        "fanout": args.fanout_text,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    paths = write_outputs(rows, meta, args.out, args.name)
    sys.stdout.write(paths[0].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
