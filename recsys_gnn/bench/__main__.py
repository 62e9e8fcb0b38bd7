"""Command line: ``python -m recsys_gnn.bench [options]`` (``make bench ARGS="..."``)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from recsys_gnn.bench.phases import DEFAULT_MODELS, BenchSettings
from recsys_gnn.bench.report import results_table, targets_table, write_report
from recsys_gnn.bench.runner import run_bench

log = logging.getLogger("recsys_gnn.bench")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _positive_ints(text: str) -> list[int]:
    values = [int(t) for t in _csv(text)]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1; got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recsys_gnn.bench", description=__doc__)
    p.add_argument(
        "--datasets", type=_csv, default=["lastfm", "ml-latest-small"], help="comma-separated dataset configs"
    )
    p.add_argument(
        "--models", type=_csv, default=list(DEFAULT_MODELS), help="model configs, or compressor:<gnn>"
    )
    p.add_argument(
        "--eval-models", type=_csv, default=["lightgcn_id"], help="models whose evaluation is timed"
    )
    p.add_argument(
        "--serve-model", default="compressor:gcn", help="model whose tables are exported and served"
    )
    p.add_argument(
        "--profile-models",
        type=_csv,
        default=["lightgcn_id", "compressor:gcn"],
        help="training step breakdown",
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="repeats of evaluation, serving and cached encoding"
    )
    p.add_argument("--epochs", type=int, default=3, help="timed training epochs per model")
    p.add_argument("--warmup-epochs", type=int, default=1, help="untimed first epochs")
    p.add_argument(
        "--quality-epochs",
        type=int,
        default=0,
        help="epochs in all for lightgcn_id (and RecBole) before NDCG@10",
    )
    p.add_argument("--encode-sample", type=int, default=2000, help="texts per first-run encode (0: all)")
    p.add_argument(
        "--encode-repeats", type=int, default=3, help="first-run encodes, each into an empty cache"
    )
    p.add_argument("--serve-requests", type=int, default=500, help="timed one-user requests per table")
    p.add_argument("--serve-batch", type=int, default=256, help="users per batch for serving throughput")
    p.add_argument("--synthetic-items", type=int, default=20000, help="items of the synthetic serving table")
    p.add_argument("--synthetic-users", type=int, default=2000, help="users of the synthetic serving table")
    p.add_argument(
        "--load-requests",
        type=int,
        default=2000,
        help="HTTP load test on the synthetic artifact: requests per run (0: skip it)",
    )
    p.add_argument(
        "--load-clients", type=_positive_ints, default=[1, 8], help="concurrent HTTP clients per run"
    )
    p.add_argument(
        "--load-workers", type=_positive_ints, default=[1, 2], help="uvicorn worker counts to load"
    )
    p.add_argument("--load-seconds", type=float, default=15.0, help="time cap of one load run")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--recbole", action="store_true", help="also time RecBole's LightGCN on the same split")
    p.add_argument(
        "--scale",
        action="store_true",
        help="run the scale curve instead (recsys_gnn.bench.scale; its options: python -m recsys_gnn.bench.scale -h)",
    )
    p.add_argument(
        "--override", action="append", default=[], help="extra Hydra override for every run (repeatable)"
    )
    p.add_argument(
        "--work-dir", type=Path, default=None, help="scratch folder (default: a new temporary folder)"
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="encoder cache for training (default: new, in work dir)"
    )
    p.add_argument("--out", type=Path, default=Path("experiments/bench"), help="report folder")
    p.add_argument("--name", default="results", help="report file stem (<out>/<name>.md/.json)")
    p.add_argument("--seed", type=int, default=0)
    return p


def settings_from_args(args: argparse.Namespace, work_dir: Path) -> BenchSettings:
    """:class:`BenchSettings` from parsed arguments."""
    for name in (
        "repeats",
        "epochs",
        "encode_repeats",
        "serve_requests",
        "serve_batch",
        "synthetic_items",
        "synthetic_users",
    ):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    return BenchSettings(
        datasets=tuple(args.datasets),
        models=tuple(args.models),
        eval_models=tuple(args.eval_models),
        serve_model=args.serve_model,
        profile_models=tuple(args.profile_models),
        repeats=args.repeats,
        epochs=args.epochs,
        warmup_epochs=max(0, args.warmup_epochs),
        quality_epochs=max(0, args.quality_epochs),
        encode_sample=args.encode_sample,
        encode_repeats=args.encode_repeats,
        serve_requests=args.serve_requests,
        serve_batch=args.serve_batch,
        synthetic_items=args.synthetic_items,
        synthetic_users=args.synthetic_users,
        recbole=args.recbole,
        overrides=tuple(args.override),
        work_dir=work_dir,
        cache_dir=args.cache_dir,
        seed=args.seed,
        extra={
            "load": {
                "requests": max(0, args.load_requests),
                "clients": tuple(args.load_clients),
                "workers": tuple(args.load_workers),
                "max_seconds": args.load_seconds,
            }
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report and print the tables to stdout."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.scale:
        from recsys_gnn.bench.scale import main as scale_main

        threads = ["--threads", str(args.threads)] if args.threads else []
        return scale_main(["--out", str(args.out), "--seed", str(args.seed), *threads])
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    command = "python -m recsys_gnn.bench " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="recsys_gnn_bench_") as tmp:
        work = args.work_dir or Path(tmp)
        results = run_bench(settings_from_args(args, work), command=command)
    js, md = write_report(results, args.out, args.name)
    log.info("report written to %s and %s", md, js)
    sys.stdout.write(results_table(results["records"]) + "\n\n" + targets_table(results["targets"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
