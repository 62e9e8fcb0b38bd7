"""Top-10 latency of every scheme x scoring path, on a run's tables and on a synthetic catalogue.

``python -m recsys_gnn.compress.speed [--run RUN_FOLDER] [--synthetic 100000] [--threads 1] [--out FILE.md]``

For each table, scheme (fp32, fp16, int8, binary, pq4/8/16, opq8) and scoring path of
:class:`~recsys_gnn.compress.search.Searcher` (``reference``: the quantised product per request, for PQ the torch
look-up-table sum; ``decoded``: the table decoded once to fp32; ``faiss``: IndexPQ / IndexBinaryFlat over the
codes), one-user top-10 requests are timed (p50/p99) after the searcher is built. ``int8 fbgemm`` is also timed:
the int8 table as per-row-scaled fbgemm weights (``torch.ops.quantized.linear_dynamic``), which keeps int8 in RAM
but re-quantises each query to 8 bits per request, so its ranking is close to but not the int8 reference's.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys_gnn.compress.quantize import PQ_SUBSPACES, Quantizer
from recsys_gnn.compress.report import measure_latency
from recsys_gnn.compress.search import Searcher

log = logging.getLogger(__name__)

SCHEMES = ("fp32", "fp16", "int8", "binary", "pq4", "pq8", "pq16", "opq8")


def _fbgemm_int8(items: Tensor, repeats: int, n_users: int, users: Tensor) -> dict[str, Any] | None:
    """Latency of the int8 table served as fbgemm per-channel int8 weights (None where fbgemm is missing)."""
    q = Quantizer("int8").encode_items(items)
    try:
        w = torch.quantize_per_channel(
            q.data.to(torch.float32) * q.scale[:, None],
            q.scale.double().clamp_min(1e-12),
            torch.zeros(len(q), dtype=torch.long),
            0,
            torch.qint8,
        )
        packed = torch.ops.quantized.linear_prepack(w, None)
    except (RuntimeError, AttributeError) as err:
        log.warning("fbgemm int8 unavailable: %s", err)
        return None
    return measure_latency(
        None,
        n_users,
        repeats=repeats,
        search_fn=lambda u, k: torch.topk(torch.ops.quantized.linear_dynamic(users[u], packed), k),
    )


def time_table(
    label: str, users: Tensor, items: Tensor, schemes: Sequence[str] = SCHEMES, repeats: int = 300
) -> list[dict[str, Any]]:
    """Rows ``{table, scheme, method, p50_ms, p99_ms, build_s, ...}`` for one pair of float tables."""
    rows = []
    for scheme in schemes:
        q = Quantizer(scheme)
        if scheme in PQ_SUBSPACES and items.shape[1] % PQ_SUBSPACES[scheme]:
            continue
        t0 = time.perf_counter()
        enc_u, enc_i = q.encode(users), q.encode_items(items)
        encode_s = time.perf_counter() - t0
        methods = ["reference", "decoded"] + (
            ["faiss"] if scheme in PQ_SUBSPACES or scheme == "binary" else []
        )
        for method in methods:
            if scheme == "fp32" and method == "reference":
                continue  # the same product as decoded
            t0 = time.perf_counter()
            searcher = Searcher(q, enc_i, method)
            build_s = time.perf_counter() - t0
            lat = measure_latency(
                None,
                len(users),
                repeats=repeats,
                search_fn=lambda u, k, s=searcher, e=enc_u: s.search(e.rows(u), k),
            )
            rows.append(
                {
                    "table": label,
                    "items": len(items),
                    "dim": int(items.shape[1]),
                    "scheme": scheme,
                    "method": method,
                    "p50_ms": lat["p50_ms"],
                    "p99_ms": lat["p99_ms"],
                    "encode_s": encode_s,
                    "build_s": build_s,
                }
            )
            log.info("%s %s %s: p50 %.3f ms p99 %.3f ms", label, scheme, method, lat["p50_ms"], lat["p99_ms"])
        if scheme == "int8":
            lat = _fbgemm_int8(items, repeats, len(users), users)
            if lat is not None:
                rows.append(
                    {
                        "table": label,
                        "items": len(items),
                        "dim": int(items.shape[1]),
                        "scheme": "int8",
                        "method": "fbgemm (approx.)",
                        "p50_ms": lat["p50_ms"],
                        "p99_ms": lat["p99_ms"],
                        "encode_s": encode_s,
                        "build_s": None,
                    }
                )
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| table | items | dim | scheme | scoring path | top-10 p50 ms | top-10 p99 ms | encode s | build s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        build = "n/a" if r["build_s"] is None else f"{r['build_s']:.2f}"
        lines.append(
            f"| {r['table']} | {r['items']:,} | {r['dim']} | {r['scheme']} | {r['method']} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['encode_s']:.1f} | {build} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", default=[], help="run folder with tables/")
    parser.add_argument("--synthetic", type=int, default=100_000, help="items of a synthetic table (0: none)")
    parser.add_argument("--dim", type=int, default=64, help="dimension of the synthetic table")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads while timing")
    parser.add_argument("--repeats", type=int, default=300, help="timed one-user requests per row")
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated schemes")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    schemes = [s for s in args.schemes.split(",") if s]
    rows = []
    for run in args.run:
        from recsys_gnn.tables import load_tables

        tables = load_tables(run / "tables")
        label = f"{run.name} (trained)"
        rows += time_table(label, tables.user_emb.float(), tables.item_emb.float(), schemes, args.repeats)
    if args.synthetic:
        gen = torch.Generator().manual_seed(0)
        items = F.normalize(torch.randn(args.synthetic, args.dim, generator=gen), dim=1)
        users = F.normalize(torch.randn(1000, args.dim, generator=gen), dim=1)
        rows += time_table("synthetic (random unit)", users, items, schemes, args.repeats)
    text = format_rows(rows)
    note = (
        f"\nOne user per request, top-10 over all items, p50/p99 of {args.repeats} requests after 10 warm-up; "
        f"torch/faiss threads = {args.threads}; CPU {platform.processor() or platform.machine()}; "
        f"torch {torch.__version__}; the searcher (decoded cache / faiss index) is built before timing "
        "(build s); encode s = quantising/learning the codes.\n"
    )
    print(text + note)
    if args.out is not None:
        args.out.write_text(text + note)


if __name__ == "__main__":
    main()
