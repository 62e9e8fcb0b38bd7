"""``recommend <artifact> --user ID | --items A,B | --similar ITEM [-k 10]``: answers as JSON on stdout.

Uses the same response builders as the HTTP app. Exit status 0 on success, 1 for an unknown id or a bad value
(the error is written to stderr as ``{"error": "..."}``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from recsys_gnn.data.errors import UnknownIdError
from recsys_gnn.serve.app import cold_start_response, recommend_response, similar_response
from recsys_gnn.serve.artifact import INDEXES, Artifact

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recommend", description="Recommendations from an exported artifact (JSON)."
    )
    p.add_argument("artifact", help="artifact folder written by python -m recsys_gnn.export")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--user", help="a known user id")
    what.add_argument("--items", help="comma-separated item ids of a new user (cold start)")
    what.add_argument("--similar", metavar="ITEM", help="an item id: its most similar items")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not skip known/given items")
    p.add_argument(
        "--index", choices=INDEXES, default="brute", help="top-K search: exact torch.topk or faiss"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one query and write its JSON answer to stdout; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        artifact = Artifact.load(args.artifact, index=args.index)
        if args.user is not None:
            out = recommend_response(artifact, args.user, k=args.k, exclude_seen=not args.include_seen)
        elif args.items is not None:
            history = [i.strip() for i in args.items.split(",") if i.strip()]
            out = cold_start_response(artifact, history, k=args.k, exclude_given=not args.include_seen)
        else:
            out = similar_response(artifact, args.similar, k=args.k)
    except (UnknownIdError, ValueError, FileNotFoundError, ImportError) as err:
        sys.stderr.write(json.dumps({"error": str(err)}) + "\n")
        return 1
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
