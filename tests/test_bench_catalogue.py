"""The catalogue-scale serving bench: exact top-10 is its own reference, approximate indexes report recall."""

from __future__ import annotations

import pytest

from recsys_gnn.bench.catalogue import format_rows, run_catalogue


def test_small_catalogue_rows_and_recall() -> None:
    pytest.importorskip("faiss", reason="the catalogue bench needs faiss-cpu")
    rows = run_catalogue(
        n_items=2000,
        dim=16,
        n_queries=20,
        nlist=16,
        pq_m=4,
        nprobes=(16,),
        hnsw_m=8,
        ef_searches=(64,),
        served=("flat", "sq8", "pq4", "rq4"),
        rq_train=1000,
    )
    by_name = {r["index"]: r for r in rows}
    assert by_name["exact fp32 (torch matmul + topk)"]["recall@10"] == 1.0
    assert by_name["IVF16,Flat nprobe=16"]["recall@10"] == pytest.approx(1.0)  # every list probed: exact
    assert 0.0 < by_name["IVF16,PQ4 nprobe=16"]["recall@10"] <= 1.0
    assert by_name["HNSW8,Flat efConstruction=128 efSearch=64"]["recall@10"] > 0.5
    refined = by_name["IVF16,PQ4 nprobe=16 + exact re-rank of 500"]  # 500 of 2000 re-ranked exactly
    assert refined["recall@10"] >= by_name["IVF16,PQ4 nprobe=16"]["recall@10"]
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in rows)
    assert "| exact fp32" in format_rows(rows)
    # exact search over compressed served tables: fp32 flat finds the exact top-10, coded tables lose some
    assert by_name["IndexFlatIP (fp32), exact over its table"]["recall@10"] == pytest.approx(1.0)
    sq8 = by_name["IndexScalarQuantizer 8-bit (int8 codes), exact over its table"]
    pq4 = by_name["IndexPQ M=4 (ADC over 4-byte codes), exact over its table"]
    assert sq8["recall@10"] > pq4["recall@10"] > 0.0 and pq4["bytes_per_item"] == 4
    rq4 = by_name["RQ M=4 (Searcher: IndexPQ scan over 4-byte residual codes), exact over its table"]
    assert sq8["recall@10"] > rq4["recall@10"] > 0.0 and rq4["bytes_per_item"] == 4
    assert all("_ids" not in r for r in rows)


def test_served_kinds_are_checked() -> None:
    pytest.importorskip("faiss", reason="the catalogue bench needs faiss-cpu")
    with pytest.raises(ValueError, match="rq5"):
        run_catalogue(
            n_items=200, dim=16, n_queries=5, nlist=4, pq_m=4, nprobes=(4,), hnsw=False, served=["rq5"]
        )
    with pytest.raises(ValueError, match="pq5"):
        run_catalogue(
            n_items=200, dim=16, n_queries=5, nlist=4, pq_m=4, nprobes=(4,), hnsw=False, served=["pq5"]
        )
