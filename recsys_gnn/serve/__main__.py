"""``python -m recsys_gnn.serve <artifact> [--host 127.0.0.1] [--port 8000]``: serve an artifact over HTTP."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from recsys_gnn.serve.artifact import INDEXES

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recsys_gnn.serve", description="Serve an exported artifact (HTTP)."
    )
    p.add_argument("artifact", help="artifact folder written by python -m recsys_gnn.export")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--index", choices=INDEXES, default="brute", help="top-K search: exact torch.topk or faiss"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per request (default 1: one-user top-k is fastest single-threaded, "
        "see experiments/bench; 0 keeps torch's default)",
    )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Load the artifact and run uvicorn until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    import torch
    import uvicorn

    from recsys_gnn.serve.app import create_app
    from recsys_gnn.serve.artifact import Artifact

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        artifact = Artifact.load(args.artifact, index=args.index)
    except (FileNotFoundError, ValueError, ImportError) as err:
        log.error("%s", err)
        return 1
    uvicorn.run(create_app(artifact), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
