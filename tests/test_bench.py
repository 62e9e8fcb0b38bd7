"""Smoke test of the benchmark's code path (``python -m recsys_gnn.bench``) on the tiny MovieLens fixture.

One repeat of everything, small serving tables; no timing is asserted, only that every phase ran, the
report holds its rows and targets, and the cached encode did no encoder work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_gnn.bench.__main__ import main


def test_bench_smoke(tiny_env: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    code = main(
        [
            "--datasets=ml-latest-small",
            "--models=mf,lightgcn_id,compressor:lightgcn",
            "--eval-models=lightgcn_id",
            "--serve-model=compressor:lightgcn",
            "--profile-models=lightgcn_id",
            "--repeats=1",
            "--epochs=1",
            "--warmup-epochs=0",
            "--encode-sample=8",
            "--encode-repeats=1",
            "--serve-requests=3",
            "--serve-batch=16",
            "--synthetic-items=300",
            "--synthetic-users=20",
            "--load-requests=10",
            "--load-clients=1,2",
            "--load-workers=1",
            "--override=encoder.max_length=16",
            f"--work-dir={tmp_path / 'work'}",
            f"--out={out}",
            "--name=smoke",
        ]
    )
    assert code == 0
    results = json.loads((out / "smoke.json").read_text())
    assert (out / "smoke.md").read_text().startswith("# recsys_gnn benchmark")
    assert (out / "machine.json").is_file()
    records = results["records"]
    assert not [r for r in records if "error" in r], [r["error"] for r in records if "error" in r]
    phases = {(r["dataset"], r["phase"]) for r in records}
    for phase in ("data", "encode", "train", "eval", "serve"):
        assert ("ml-latest-small", phase) in phases, phase
    assert ("synthetic", "serve") in phases
    load = [r for r in records if r["phase"] == "load"]
    assert {(r["clients"], r["metric"]) for r in load} == {
        (c, m)
        for c in (1, 2)
        for m in ("HTTP requests/s", "HTTP latency p50", "HTTP latency p99", "HTTP errors")
    }
    assert all(r["workers"] == 1 and r["errors"] == 0 and r["requests"] == 10 for r in load)
    epochs = {r["name"] for r in records if r["phase"] == "train" and r["metric"] == "epoch"}
    assert epochs == {"mf", "lightgcn_id", "compressor:lightgcn"}
    cached = [r for r in records if r["phase"] == "encode" and r["name"].startswith("cached run")]
    assert cached and cached[0]["no_encoder_work"] and cached[0]["encoder_calls"] == 0
    evals = [r for r in records if r["phase"] == "eval" and r["unit"] == "s"]
    ndcgs = {round(r["ndcg10"], 6) for r in evals}
    assert len(evals) == 3 and len(ndcgs) == 1  # the three evaluation paths agree
    assert all(r["value"] > 0 and r["rss_peak_mb"] > 0 for r in evals)
    assert results["profiles"]["train"][0]["steps"] > 0
    assert {t["target"] for t in results["targets"]}  # targets are evaluated (on lastfm: "not measured" here)
    assert results["machine"]["torch_threads"] >= 1 and "commit" in results
    assert "| dataset |" in capsys.readouterr().out


def test_targets_include_issue_11s_eval_ratio_to_recbole() -> None:
    """With RecBole timed in the same run, evaluation is also checked against 0.25x RecBole's evaluation."""
    from recsys_gnn.bench.report import evaluate_targets

    def rec(phase: str, name: str, metric: str, value: float) -> dict:
        return {"dataset": "lastfm", "phase": phase, "name": name, "metric": metric, "value": value}

    records = [
        rec("train", "lightgcn_id", "epoch", 1.0),
        {**rec("eval", "lightgcn_id", "Trainer.test, all users (s)", 0.3), "n_users": 1892, "n_items": 17632},
        rec("reference", "lightgcn_id, paired with RecBole", "Trainer.test, all users (s)", 0.29),
    ]
    recbole = {"lastfm": {"epoch_s": [2.0, 2.2], "eval_s": [1.2, 1.2]}}
    rows = evaluate_targets(records, recbole, {})
    ratio = [r for r in rows if "0.25x RecBole" in r["target"]]
    assert len(ratio) == 1
    assert ratio[0]["limit"] == pytest.approx(0.3) and ratio[0]["measured"] == pytest.approx(0.29)
    assert ratio[0]["met"]
    epoch = [r for r in rows if r["target"].startswith("lightgcn_id epoch") and "RecBole" in r["basis"]]
    assert epoch[0]["limit"] == pytest.approx(1.05) and epoch[0]["met"]
    assert not any("0.25x RecBole" in r["target"] for r in evaluate_targets(records, None, {}))
