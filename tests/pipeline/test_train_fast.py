"""End-to-end `fast_dev_run` training on a tiny MovieLens-format fixture, for every GNN and graph type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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
        assert "test_cold_only/ndcg@10" in metrics and "test_warm_only/ndcg@10" in metrics
    if split == "cold_users":
        assert "test_cold_users/ndcg@10" in metrics


def test_short_real_training_learns(tiny_env: Path, make_cfg) -> None:
    """A few real epochs (no fast_dev_run): checkpointing on val/ndcg@10 and testing the best checkpoint."""
    cfg = make_cfg(
        [
            "gnn=gcn",
            "compress.dim=16",
            "trainer.max_epochs=3",
            "data.batch_size=256",
            "compress.evaluate=[fp32,int8]",
        ],
        fast=False,
    )
    result = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result == pytest.approx(metrics["val/ndcg@10"])
    assert Path((out / "best_checkpoint.txt").read_text()).exists()
    assert (out / "csv" / "metrics.csv").exists()
    assert metrics["fit/epochs"] >= 1
    # The quantised-table evaluator and the Lightning test loop are two code paths over the same protocol.
    for k in (5, 10, 20):
        assert metrics[f"test_fp32/ndcg@{k}"] == pytest.approx(metrics[f"test/ndcg@{k}"], abs=1e-5)
        assert metrics[f"test_fp32/recall@{k}"] == pytest.approx(metrics[f"test/recall@{k}"], abs=1e-5)
    assert 0.0 <= metrics["test_int8/ndcg@10"] <= 1.0
    info = json.loads((out / "run_info.json").read_text())
    assert info["trainable_params"] > 0 and info["seed"] == cfg.seed


def test_distillation_from_lm_and_from_a_run(tiny_env: Path, make_cfg, tmp_path: Path) -> None:
    """The student trains with the LM teacher, and with a teacher run folder on the same data."""
    cfg = make_cfg(["model=distill", "compress.dim=8"])
    train(cfg)
    teacher_run = Path(cfg.paths.output_dir)
    assert (teacher_run / "tables" / "embeddings.safetensors").exists()
    cfg2 = make_cfg(["model=distill", "compress.dim=4", f"model.teacher={teacher_run}", "gnn.num_layers=1"])
    cfg2.paths.output_dir = str(tmp_path / "student")
    train(cfg2)
    assert (tmp_path / "student" / "metrics.json").exists()


def test_distillation_teacher_on_other_data_is_rejected(tiny_env: Path, make_cfg, tmp_path: Path) -> None:
    from recsys_gnn.models.context import ModelContext
    from recsys_gnn.models.distill import teacher_tables
    from recsys_gnn.pipeline import load_data
    from recsys_gnn.tables import save_tables

    data = load_data(make_cfg())
    save_tables(tmp_path / "t" / "tables", torch.zeros(3, 4), torch.zeros(5, 4), _shrunk(data))
    with pytest.raises(ValueError, match="same dataset, filtering and split"):
        teacher_tables(ModelContext(data), str(tmp_path / "t"))


def _shrunk(data):
    import dataclasses

    def keep(p):
        return p[(p[:, 0] < 3) & (p[:, 1] < 5)]

    return dataclasses.replace(
        data,
        n_users=3,
        n_items=5,
        user_ids=data.user_ids[:3],
        item_ids=data.item_ids[:5],
        item_titles=data.item_titles[:5],
        train=keep(data.train),
        val=keep(data.val),
    )
