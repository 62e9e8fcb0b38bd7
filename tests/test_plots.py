"""Per-run plots: which subsets are drawn, and nothing drawn from nothing."""

from __future__ import annotations

from pathlib import Path

from recsys_gnn.plots import subset_values, write_run_plots


def test_subset_values_pick_every_test_stage() -> None:
    metrics = {"test/ndcg@10": 0.2, "test_cold/ndcg@10": 0.05, "val/ndcg@10": 0.3, "test/recall@10": 0.4}
    assert subset_values(metrics) == {"test": 0.2, "test_cold": 0.05}


def test_plots_written_only_when_there_is_something_to_compare(tmp_path: Path) -> None:
    assert write_run_plots(tmp_path / "a", {"test/ndcg@10": 0.2}, None) == []
    report = {"rows": [{"name": "m fp32", "ndcg@10": 0.2, "bytes_per_item": 256.0, "lm_at_serving": False}]}
    metrics = {"test/ndcg@10": 0.2, "test_int8/ndcg@10": 0.19}
    written = write_run_plots(tmp_path / "b", metrics, report)
    assert [p.name for p in written] == ["quality_vs_bytes.png", "ndcg_by_subset.png"]
    assert all(p.stat().st_size > 1000 for p in written)
