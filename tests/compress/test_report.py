"""The compression report: sizes from tensors, metrics from metrics.json, retained share, latency timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from recsys_gnn.compress.quantize import Quantizer
from recsys_gnn.compress.report import compression_report, measure_latency, report_row, write_report

FAST = {"repeats": 20, "batch_size": 8, "warmup": 2}


def test_int8_bytes_are_counted_from_the_tensors() -> None:
    stored = Quantizer("int8").compress({"user_emb": torch.randn(4, 8), "item_emb": torch.randn(10, 8)})
    row = report_row("m", serve_tensors=stored, n_items=10, train_params=None, lm_at_serving=False)
    # 10 items x 8 dims int8 = 80 bytes + 10 fp32 scales = 40 bytes; 4 users likewise: 32 + 16
    assert row["bytes_per_item"] == (80 + 40) / 10
    assert row["serve_bytes"] == 80 + 40 + 32 + 16
    assert row["serve_params"] == 10 * 8 + 10 + 4 * 8 + 4
    assert row["serve_tensors"]["item_scale"] == {"shape": [10], "dtype": "float32", "bytes": 40}


def test_lm_weights_that_run_per_request_count_as_serving() -> None:
    lm = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 16))  # stands in for an encoder run per request
    items = torch.randn(10, 16)
    tensors = {"item_emb": items, **{f"lm.{k}": v for k, v in lm.state_dict().items()}}
    n_train = sum(p.numel() for p in lm.parameters())
    row = report_row("lm", serve_tensors=tensors, n_items=10, train_params=n_train, lm_at_serving=True)
    assert row["train_params"] == 50 * 16 + 16 * 16 + 16
    assert row["serve_bytes"] == (10 * 16 + 50 * 16 + 16 * 16 + 16) * 4
    assert row["bytes_per_item"] == 16 * 4  # the item table only
    assert row["lm_at_serving"] is True


def test_report_reads_metrics_and_computes_retained_share(tmp_path: Path) -> None:
    model_metrics = {"test/ndcg@10": 0.2, "test/recall@10": 0.3, "val/ndcg@10": 0.9}
    teacher_metrics = {"test/ndcg@10": 0.25, "test/recall@10": 0.35}
    fp16 = Quantizer("fp16").compress({"user_emb": torch.randn(3, 4), "item_emb": torch.randn(5, 4)})
    rows = [
        report_row(
            "model",
            serve_tensors=fp16,
            n_items=5,
            train_params=99,
            lm_at_serving=False,
            metrics=model_metrics,
        ),
        report_row(
            "teacher",
            serve_tensors={"item_emb": torch.randn(5, 384)},
            n_items=5,
            train_params=0,
            lm_at_serving=False,
            metrics=teacher_metrics,
        ),
        report_row(
            "popularity",
            serve_tensors={"item_pop": torch.zeros(5)},
            n_items=5,
            train_params=0,
            lm_at_serving=False,
        ),
    ]
    report = compression_report(rows, teacher="teacher", notes=["measured by hand"])
    model, teacher, pop = report["rows"]
    assert model["ndcg@10"] == 0.2 and model["recall@10"] == 0.3
    assert model["ndcg_retained"] == pytest.approx(0.8) and teacher["ndcg_retained"] == 1.0
    assert pop["ndcg@10"] is None and pop["ndcg_retained"] is None
    assert model["serve_bytes"] == (3 + 5) * 4 * 2 and teacher["bytes_per_item"] == 384 * 4
    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"][0]["ndcg_retained"] == pytest.approx(0.8)
    md = md_path.read_text()
    assert "| model | 99 | 32 | 64 | 8.0 | no |" in md  # fp16: 4 dims x 2 bytes per item
    assert "80.0%" in md and "100.0%" in md and "measured by hand" in md and "n/a" in md


def test_report_errors() -> None:
    row = report_row(
        "a", serve_tensors={"item_emb": torch.zeros(2, 2)}, n_items=2, train_params=1, lm_at_serving=False
    )
    with pytest.raises(ValueError, match="teacher 'b' is not one of the report rows"):
        compression_report([row], teacher="b")
    with pytest.raises(ValueError, match="duplicate row names"):
        compression_report([row, row])
    with pytest.raises(ValueError, match="item_keys"):
        report_row(
            "a",
            serve_tensors={"x": torch.zeros(1)},
            n_items=1,
            train_params=1,
            lm_at_serving=False,
            item_keys=["y"],
        )


def test_measure_latency_times_the_score_function() -> None:
    items = torch.randn(100, 8)
    users = torch.randn(30, 8)
    calls: list[int] = []

    def score(rows: torch.Tensor) -> torch.Tensor:
        calls.append(len(rows))
        return users[rows] @ items.T

    out = measure_latency(score, n_users=30, k=10, **FAST, batch_repeats=3)
    assert calls.count(1) == FAST["warmup"] + FAST["repeats"]
    assert calls.count(8) == FAST["warmup"] + 3
    assert 0 < out["p50_ms"] <= out["p99_ms"]
    assert out["throughput_users_per_s"] > 0 and out["torch_threads"] == torch.get_num_threads()
    assert out["batch_size"] == 8 and out["k"] == 10 and out["device"] == "cpu"


def test_measure_latency_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k=10 exceeds the 5 items"):
        measure_latency(lambda rows: torch.zeros(len(rows), 5), n_users=3, k=10, **FAST)
    with pytest.raises(ValueError, match="must return \\(1, I\\)"):
        measure_latency(lambda rows: torch.zeros(5), n_users=3, k=1, **FAST)
    with pytest.raises(ValueError, match="n_users"):
        measure_latency(lambda rows: rows, n_users=0)
