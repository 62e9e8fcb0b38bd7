"""Serving top-10 from a large synthetic catalogue at one thread: exact fp32 against approximate faiss indexes.

``python -m recsys_gnn.bench.catalogue [--items 1000000] [--dim 64] [--out FILE.md]``

The catalogue is random unit vectors (the cosine tables the compressor serves), the queries other random unit
vectors. Rows:

- ``exact fp32``: ``torch.topk(items @ u)`` over the whole table (the reference, recall 1 by definition);
- ``IVF{nlist},PQ{m}`` (faiss ``IndexIVFPQ``, inner product) at several ``nprobe``, alone and with an exact
  re-rank of ``k * k_factor`` candidates (``IndexRefineFlat``: keeps the fp32 vectors too);
- ``IVF{nlist},Flat`` at several ``nprobe`` (no coding error: recall is limited by the probed lists only);
- ``HNSW{M}`` (faiss ``IndexHNSWFlat``, inner product, ``--ef-construction``) at several ``efSearch``
  (``--no-hnsw`` skips it; building it is the slow part);
- exact search over a compressed served table (``--served``, default ``flat,sq8,pq8,pq16,rq8``): faiss
  ``IndexFlatIP`` (fp32), ``IndexScalarQuantizer`` 8-bit (int8 codes), ``IndexPQ`` with M one-byte codes (the
  index :class:`~recsys_gnn.compress.search.Searcher` serves PQ artifacts with; asymmetric distance over every
  item's codes), and ``rq<M>``: M residual codebooks (learned on a sample of ``rq_train`` items) served by
  :class:`~recsys_gnn.compress.search.Searcher` itself, as an RQ artifact is. These rows rank exactly what
  such an artifact serves (search column ``exact over its table``); their recall@10 against the fp32 top-10
  is the table's quantisation loss on random vectors, not a search approximation (on trained tables quality is judged by NDCG, ``experiments/compression/``).

For each: p50/p99 of one-query top-10 latency, recall@10 against the exact top-10, build seconds and the bytes the
index holds per item. Random unit vectors are the hardest case for approximate search (no cluster structure):
recall on trained tables is higher at the same settings.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch and faiss at one thread inside the block; torch's thread count is restored afterwards."""
    import faiss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _timed(fn, queries: np.ndarray, warmup: int = 5) -> tuple[np.ndarray, list[float]]:
    """Run ``fn(q (1, D)) -> top ids (1, k)`` per query; returns the ids ``(Q, k)`` and per-query milliseconds."""
    for q in queries[:warmup]:
        fn(q[None])
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        top = fn(q[None])
        times.append((time.perf_counter() - t0) * 1000.0)
        ids.append(np.asarray(top).reshape(-1))
    return np.stack(ids), times


def _recall(got: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(
        np.mean([len(set(g.tolist()) & set(e.tolist())) / k for g, e in zip(got, exact, strict=True)])
    )


def run_catalogue(
    n_items: int = 1_000_000,
    dim: int = 64,
    n_queries: int = 200,
    k: int = 10,
    nlist: int = 1024,
    pq_m: int = 16,
    nprobes: Sequence[int] = (8, 16, 32, 64),
    hnsw_m: int = 32,
    ef_searches: Sequence[int] = (256, 512, 768, 1024),
    ef_construction: int = 128,
    hnsw: bool = True,
    seed: int = 0,
    refine_factors: Sequence[int] = (10, 50),
    served: Sequence[str] = ("flat", "sq8", "pq8", "pq16", "rq8"),
    rq_train: int = 20_000,
) -> list[dict[str, Any]]:
    """Time exact and approximate top-``k`` over ``n_items`` random unit vectors; one row per index setting.

    Runs at one thread (torch and faiss); torch's thread count is restored afterwards.
    """
    for kind in served:  # refuse a bad kind before anything slow runs
        _served_index(kind, dim)
    with _one_thread():
        import faiss

        gen = torch.Generator().manual_seed(seed)
        items_t = F.normalize(torch.randn(n_items, dim, generator=gen), dim=1).contiguous()
        queries_t = F.normalize(torch.randn(n_queries, dim, generator=gen), dim=1)
        items, queries = items_t.numpy(), np.ascontiguousarray(queries_t.numpy())
        rows: list[dict[str, Any]] = []

        def add(
            name: str,
            ids: np.ndarray,
            times: list[float],
            build_s: float,
            bytes_per_item: float,
            exact_over_table: bool = False,
        ) -> None:
            rows.append(
                {
                    "index": name,
                    "items": n_items,
                    "dim": dim,
                    "p50_ms": float(np.percentile(times, 50)),
                    "p99_ms": float(np.percentile(times, 99)),
                    "recall@10": _recall(ids, exact),
                    "build_s": build_s,
                    "bytes_per_item": bytes_per_item,
                    "exact_over_table": exact_over_table,
                }
            )
            log.info(
                "%s: p50 %.3f ms, p99 %.3f ms, recall %.3f",
                name,
                rows[-1]["p50_ms"],
                rows[-1]["p99_ms"],
                rows[-1]["recall@10"],
            )

        with torch.inference_mode():
            exact, times = _timed(
                lambda q: torch.topk(items_t @ torch.from_numpy(q)[0], k).indices.numpy(), queries
            )
        add("exact fp32 (torch matmul + topk)", exact, times, 0.0, dim * 4)

        train = items[
            np.random.default_rng(seed).choice(n_items, size=min(n_items, 100 * nlist), replace=False)
        ]
        for coded in ("PQ", "Flat"):
            t0 = time.perf_counter()
            quantizer = faiss.IndexFlatIP(dim)
            if coded == "PQ":
                index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
                per_item = pq_m + 8  # codes + the stored int64 id
            else:
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
                per_item = dim * 4 + 8
            index.train(train)
            index.add(items)
            build = time.perf_counter() - t0
            for nprobe in nprobes:
                index.nprobe = nprobe
                ids, times = _timed(lambda q, ix=index: ix.search(q, k)[1], queries)
                add(
                    f"IVF{nlist},{coded}{pq_m if coded == 'PQ' else ''} nprobe={nprobe}",
                    ids,
                    times,
                    build,
                    per_item,
                )
            if coded == "PQ" and refine_factors:
                refined = faiss.IndexRefineFlat(index, faiss.swig_ptr(items))
                for nprobe in nprobes[-2:]:
                    index.nprobe = nprobe
                    for factor in refine_factors:
                        refined.k_factor = factor
                        ids, times = _timed(lambda q, ix=refined: ix.search(q, k)[1], queries)
                        name = f"IVF{nlist},PQ{pq_m} nprobe={nprobe} + exact re-rank of {k * factor}"
                        add(name, ids, times, build, per_item + dim * 4)
        if hnsw:
            t0 = time.perf_counter()
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.add(items)
            build = time.perf_counter() - t0
            for ef in ef_searches:
                index.hnsw.efSearch = ef
                ids, times = _timed(lambda q, ix=index: ix.search(q, k)[1], queries)
                name = f"HNSW{hnsw_m},Flat efConstruction={ef_construction} efSearch={ef}"
                add(name, ids, times, build, dim * 4 + hnsw_m * 2 * 4)
        for kind in served:  # exact top-k over compressed served tables
            if kind.startswith("rq"):
                ids, times, build, per_item = _served_rq(kind, items_t, queries, k, rq_train, seed)
                name = f"RQ M={kind[2:]} (Searcher: IndexPQ scan over {kind[2:]}-byte residual codes)"
                add(f"{name}, exact over its table", ids, times, build, per_item, exact_over_table=True)
                continue
            t0 = time.perf_counter()
            index, per_item = _served_index(kind, dim)
            if not index.is_trained:
                sample = np.random.default_rng(seed).choice(
                    n_items, size=min(n_items, 100_000), replace=False
                )
                index.train(items[sample])
            index.add(items)
            build = time.perf_counter() - t0
            ids, times = _timed(lambda q, ix=index: ix.search(q, k)[1], queries)
            name = SERVED.get(kind, f"IndexPQ M={kind[2:]} (ADC over {kind[2:]}-byte codes)")
            add(f"{name}, exact over its table", ids, times, build, per_item, exact_over_table=True)
        return rows


SERVED = {"flat": "IndexFlatIP (fp32)", "sq8": "IndexScalarQuantizer 8-bit (int8 codes)"}


def _served_rq(
    kind: str, items: torch.Tensor, queries: np.ndarray, k: int, n_train: int, seed: int
) -> tuple[np.ndarray, list[float], float, float]:
    """Top-``k`` ids ``(Q, k)``, per-query ms, build seconds and bytes/item of an RQ table served by ``Searcher``.

    The codebooks are learned on ``n_train`` sampled rows of ``items`` ``(I, D)``; every row is then coded (beam
    search), which is most of the build time at 10^6 items.
    """
    from recsys_gnn.compress.quantize import Encoded, Quantizer, pq_encode, train_rq
    from recsys_gnn.compress.search import Searcher

    m = int(kind[2:])
    t0 = time.perf_counter()
    sample = np.random.default_rng(seed).choice(len(items), size=min(len(items), n_train), replace=False)
    codebooks = train_rq(items[torch.from_numpy(sample)], m)
    log.info(
        "%s: codebooks learned on %d rows in %.1f s; coding %d rows",
        kind,
        len(sample),
        time.perf_counter() - t0,
        len(items),
    )
    table = Encoded(pq_encode(items, codebooks, additive=True), None, int(items.shape[1]), codebooks)
    qz = Quantizer(kind)
    searcher = Searcher(qz, table)
    build = time.perf_counter() - t0
    ids, times = _timed(lambda q: searcher.search(qz.encode(torch.from_numpy(q)), k)[1].numpy(), queries)
    return ids, times, build, m


def _served_index(kind: str, dim: int):
    """An untrained faiss index for a served-table kind: flat, sq8 or pq<M> (M one-byte codes)."""
    import faiss

    if kind == "flat":
        return faiss.IndexFlatIP(dim), dim * 4
    if kind == "sq8":
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT), dim
    if kind.startswith("pq") and kind[2:].isdigit() and dim % int(kind[2:]) == 0:
        m = int(kind[2:])
        return faiss.IndexPQ(dim, m, 8, faiss.METRIC_INNER_PRODUCT), m
    if kind in ("rq4", "rq8", "rq16"):  # served by _served_rq; the index here only validates the kind
        return faiss.IndexFlatIP(dim), int(kind[2:])
    raise ValueError(
        f"--served kind {kind!r}: expected flat, sq8, pq<M> with M dividing dim {dim}, or rq4/rq8/rq16"
    )


def format_rows(rows: Sequence[dict[str, Any]], target_ms: float = 10.0, target_recall: float = 0.95) -> str:
    lines = [
        "| index | items | dim | top-10 p50 ms | top-10 p99 ms | recall@10 vs fp32 | build s | bytes/item (approx.) "
        f"| p99 < {target_ms:g} ms and recall >= {target_recall:g} | p99 < {target_ms:g} ms, exact over the served "
        "table |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = r["p99_ms"] < target_ms and r["recall@10"] >= target_recall
        exact_ok = r["p99_ms"] < target_ms and (r["exact_over_table"] or r["recall@10"] >= 1.0)
        lines.append(
            f"| {r['index']} | {r['items']:,} | {r['dim']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['recall@10']:.3f} | {r['build_s']:.1f} | {r['bytes_per_item']:.0f} | {'yes' if ok else 'no'} "
            f"| {'yes' if exact_ok else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--pq-m", type=int, default=16)
    p.add_argument("--no-hnsw", action="store_true", help="skip HNSW (its build is the slow part)")
    p.add_argument("--ef-search", default="256,512,768,1024", help="HNSW efSearch values, comma-separated")
    p.add_argument("--ef-construction", type=int, default=128, help="HNSW efConstruction (graph quality)")
    p.add_argument(
        "--served",
        default="flat,sq8,pq8,pq16,rq8",
        help="compressed served tables searched exactly (flat, sq8, pq<M>, rq<M>; comma-separated, '' for none)",
    )
    p.add_argument("--rq-train", type=int, default=20_000, help="rows the RQ codebooks are learned on")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = run_catalogue(
        args.items,
        args.dim,
        args.queries,
        nlist=args.nlist,
        pq_m=args.pq_m,
        hnsw=not args.no_hnsw,
        ef_searches=[int(e) for e in args.ef_search.split(",") if e],
        ef_construction=args.ef_construction,
        served=[s for s in args.served.split(",") if s],
        rq_train=args.rq_train,
    )
    text = format_rows(rows) + (
        f"\nOne query per request, 1 thread (torch and faiss), {args.queries} queries after 5 warm-up, random unit "
        f"vectors; CPU {platform.processor() or platform.machine()}, torch {torch.__version__}. recall@10 = "
        "share of the exact fp32 top-10 found. Rows marked `exact over its table` rank exactly what an artifact "
        "with that table serves; their recall is the table's quantisation loss on random unit vectors (the worst "
        "case), not a search approximation.\n"
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
