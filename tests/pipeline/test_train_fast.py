"""End-to-end `fast_dev_run` training on a tiny MovieLens-format fixture, for every GNN and graph type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_gnn.pipeline import train

GNNS = ["gcn", "lightgcn", "gat", "sage"]
GRAPHS = ["user_item", "item_item", "item_knn", "hybrid"]


@pytest.mark.parametrize("gnn", GNNS)
@pytest.mark.parametrize("graph", GRAPHS)
def test_fast_dev_run_every_gnn_and_graph(tiny_env: Path, make_cfg, gnn: str, graph: str) -> None:
    cfg = make_cfg([f"gnn={gnn}", f"graph={graph}", "compress.dim=16"])
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in ("val", "test"):
        for k in (5, 10, 20):
            assert 0.0 <= metrics[f"{stage}/ndcg@{k}"] <= 1.0
            assert 0.0 <= metrics[f"{stage}/recall@{k}"] <= 1.0
    assert (out / "config.yaml").exists() and (out / "protocol.json").exists()
    assert "Protocol:" in (out / "metrics.md").read_text()


@pytest.mark.parametrize("split", ["temporal", "cold_items", "cold_users"])
def test_fast_dev_run_splits(tiny_env: Path, make_cfg, split: str) -> None:
    cfg = make_cfg([f"split={split}", "gnn=lightgcn", "compress.dim=16"])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    if split == "cold_items":
        assert "test_cold/ndcg@10" in metrics and "test_warm/ndcg@10" in metrics
    if split == "cold_users":
        assert "test_cold_users/ndcg@10" in metrics


def test_short_real_training_learns(tiny_env: Path, make_cfg) -> None:
    """A few real epochs (no fast_dev_run): checkpointing on val/ndcg@10 and testing the best checkpoint."""
    cfg = make_cfg(["gnn=gcn", "compress.dim=16", "trainer.max_epochs=3", "data.batch_size=256"], fast=False)
    result = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result == pytest.approx(metrics["val/ndcg@10"])
    assert Path((out / "best_checkpoint.txt").read_text()).exists()
    assert (out / "csv" / "metrics.csv").exists()
    assert metrics["fit/epochs"] >= 1
