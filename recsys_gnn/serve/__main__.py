"""``python -m recsys_gnn.serve <artifact> [--host 127.0.0.1] [--port 8000] [--workers N]``: serve an artifact.

One worker serves from this process. With ``--workers N`` uvicorn starts N worker processes on the same socket;
each builds its app with :func:`recsys_gnn.serve.app.app_from_env` (the artifact path, index, torch threads and
request limits travel as ``RECSYS_GNN_*`` environment variables) and holds its own read-only copy of the
artifact, so memory grows with N. Request limits (``--max-*``) default to ``RECSYS_GNN_SERVE_MAX_*`` when set,
else to :class:`recsys_gnn.serve.app.ServeLimits`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import fields

from recsys_gnn.serve.artifact import INDEXES

log = logging.getLogger(__name__)

#: uvicorn's h11 parser refuses a request line + headers above this many bytes (h11's own default, 16 KiB)
H11_DEFAULT_EVENT_BYTES = 16 * 1024
HEADER_ROOM_BYTES = 8 * 1024  # headers allowed beside a URL at the --max-url-bytes limit

LIMIT_HELP = {
    "max_body_bytes": "request body size; 413 above it",
    "max_url_bytes": "path + query string length; 414 above it",
    "max_items": "item ids in a POST /recommend history; 422 above it",
    "max_id_chars": "characters of a user or item id; 422 above it",
    "max_k": "largest k (never more than the number of items); 422 above it",
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from recsys_gnn.serve.app import ServeLimits

    p = argparse.ArgumentParser(
        prog="python -m recsys_gnn.serve", description="Serve an exported artifact (HTTP)."
    )
    p.add_argument("artifact", help="artifact folder written by python -m recsys_gnn.export")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
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
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes (default 1); each loads its own copy of the artifact",
    )
    p.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=None,
        help="uvicorn answers 503 above this many open connections + tasks per worker (default: no limit)",
    )
    p.add_argument(
        "--no-access-log", action="store_true", help="do not log every request (faster under load)"
    )
    defaults = ServeLimits.from_env()
    for f in fields(ServeLimits):
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            type=_positive_int,
            default=getattr(defaults, f.name),
            help=f"{LIMIT_HELP[f.name]} (default {getattr(defaults, f.name)}; "
            f"env {ServeLimits.env_name(f.name)})",
        )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Load the artifact and run uvicorn until interrupted; returns the exit status."""
    from recsys_gnn.serve.app import (
        ARTIFACT_ENV,
        INDEX_ENV,
        THREADS_ENV,
        VERIFY_ENV,
        ServeLimits,
    )

    try:
        parser = build_parser()
    except ValueError as err:  # a bad RECSYS_GNN_SERVE_MAX_* variable
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        log.error("%s", err)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    import torch
    import uvicorn

    from recsys_gnn.serve.app import create_app
    from recsys_gnn.serve.artifact import Artifact

    limits = ServeLimits(**{f.name: getattr(args, f.name) for f in fields(ServeLimits)})
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        artifact = Artifact.load(args.artifact, index=args.index)
    except (FileNotFoundError, ValueError, ImportError) as err:
        log.error("%s", err)
        return 1
    server = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": not args.no_access_log,
        "limit_concurrency": args.limit_concurrency,
        # keep h11's request-line limit above ours, so an over-long URL gets the app's 414, not a 400
        "h11_max_incomplete_event_size": max(
            H11_DEFAULT_EVENT_BYTES, limits.max_url_bytes + HEADER_ROOM_BYTES
        ),
    }
    if args.workers == 1:
        uvicorn.run(create_app(artifact, limits), **server)
        return 0
    del artifact  # checked here (checksums included); each worker loads its own copy
    os.environ.update(
        {
            ARTIFACT_ENV: str(args.artifact),
            INDEX_ENV: args.index,
            THREADS_ENV: str(args.threads),
            VERIFY_ENV: "0",
            **limits.to_env(),
        }
    )
    uvicorn.run("recsys_gnn.serve.app:app_from_env", factory=True, workers=args.workers, **server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
