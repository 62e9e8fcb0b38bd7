"""domain=news end to end on the MIND-format fixtures: impression training, history users, selection on
validation impressions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recsys_gnn.pipeline import train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def news_env(tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RECSYS_GNN_RAW with the NeMig fixture as ``nemig`` and the MIND fixture as ``mind-small``."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "nemig").symlink_to(FIXTURES / "nemig")
    (raw / "mind-small").symlink_to(FIXTURES / "mind")
    monkeypatch.setenv("RECSYS_GNN_RAW", str(raw))
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    return raw


def test_news_domain_defaults(make_cfg) -> None:
    cfg = make_cfg(["domain=news"])
    assert cfg.dataset.name == "nemig" and cfg.data.sampling == "impressions"
    assert cfg.data.impression_negatives == 4 and cfg.monitor == "val_impressions/auc"
    assert cfg.callbacks.early_stopping.monitor == "val_impressions/auc"
    assert cfg.model.similarity == "dot" and cfg.module.temperature == 1.0  # model=news_compressor
    assert make_cfg(["domain=news", "model=compressor"]).model.similarity == "cosine"
    assert make_cfg(["domain=news", "model=ctr"]).model._target_.endswith("ImpressionCTR")
    assert make_cfg([]).data.sampling == "uniform"


@pytest.mark.parametrize("dataset", ["nemig", "mind-small"])
@pytest.mark.parametrize("gnn", ["gat", "lightgcn"])
def test_fast_dev_run_news(news_env: Path, make_cfg, dataset: str, gnn: str) -> None:
    cfg = make_cfg(["domain=news", f"dataset={dataset}", f"gnn={gnn}", "compress.dim=16"])
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in ("val_impressions", "test_impressions"):
        for name in ("auc", "mrr", "ndcg@5", "ndcg@10"):
            assert 0.0 <= metrics[f"{stage}/{name}"] <= 1.0
    assert metrics["test_impressions/auc_ci_low"] <= metrics["test_impressions/auc_ci_high"]
    table = (out / "metrics.md").read_text()
    assert "test_impressions/auc" in table and "val_impressions/auc" in table


@pytest.mark.parametrize("model", ["ctr", "random", "pop", "lm_content", "lm_finetune"])
def test_news_baselines(news_env: Path, make_cfg, model: str) -> None:
    # lm_finetune trains on impressions through its own impression_loss (its embed() has no gradients)
    extra = ["~gnn", "~graph", "model.max_length=16"] if model == "lm_finetune" else []
    cfg = make_cfg(["domain=news", f"model={model}", *extra])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 0.0 <= metrics["test_impressions/auc"] <= 1.0


def test_val_impression_auc_is_logged_each_epoch_and_monitored(news_env: Path, make_cfg) -> None:
    cfg = make_cfg(
        [
            "domain=news",
            "gnn=lightgcn",
            "compress.dim=16",
            "trainer.max_epochs=3",
            "logger=csv",
            "+compress.report=false",  # the size/latency report needs a catalogue larger than its k
        ],
        fast=False,
    )
    train(cfg)
    out = Path(cfg.paths.output_dir)
    rows = list(csv.DictReader(next(out.rglob("metrics.csv")).open()))
    per_epoch = [r for r in rows if r.get("val_impressions/auc")]
    assert len(per_epoch) >= 3  # every epoch (+ the final validation of the best checkpoint)
    ckpt = Path((out / "best_checkpoint.txt").read_text())
    assert ckpt.exists()
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    monitors = [v.get("monitor") for k, v in state["callbacks"].items() if "ModelCheckpoint" in k]
    assert monitors == ["val_impressions/auc"]


def test_uniform_sampling_on_news_still_works(news_env: Path, make_cfg) -> None:
    cfg = make_cfg(["domain=news", "data.sampling=uniform", "gnn=lightgcn", "compress.dim=16"])
    train(cfg)
    assert "test_impressions/auc" in json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
