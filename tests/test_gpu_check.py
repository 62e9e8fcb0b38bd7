"""GPU check tool (recsys_gnn.bench.gpu_check, experiments/bench/gpu_check.sh): skip path, comparison, CPU self-test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recsys_gnn.bench import gpu_check

REPO = Path(__file__).resolve().parents[1]


def test_compare_reports_the_worst_metric_and_those_beyond_atol() -> None:
    ref = {"val/ndcg@10": 0.30, "val/recall@10": 0.50, "test/ndcg@10": 0.20}
    other = {"val/ndcg@10": 0.3004, "val/recall@10": 0.51, "test/ndcg@10": 0.20}
    worst, key, bad = gpu_check.compare(ref, other, atol=5e-3)
    assert key == "val/recall@10" and worst == pytest.approx(0.01) and bad == ["val/recall@10"]
    assert gpu_check.compare(ref, dict(ref), atol=0.0) == (0.0, "test/ndcg@10", [])
    worst, key, bad = gpu_check.compare(ref, {"val/ndcg@10": 0.3}, atol=1.0)  # missing metrics never pass
    assert worst == float("inf") and set(bad) == {"val/recall@10", "test/ndcg@10"}


def test_skips_cleanly_without_cuda(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "gpu-check SKIPPED: no CUDA device" in capsys.readouterr().out
    assert gpu_check.main(["--require-gpu"]) == 2
    assert "gpu-check FAILED: no CUDA device" in capsys.readouterr().out


def test_shell_script_skips_without_a_gpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PY": sys.executable,
        "GPU_CHECK_OUT": str(tmp_path / "out"),
    }
    proc = subprocess.run(
        ["bash", str(REPO / "experiments/bench/gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gpu-check SKIPPED" in proc.stdout and "NVIDIA GPU" in proc.stdout
    assert not (tmp_path / "out").exists()  # nothing written when nothing ran


def test_cpu_self_test_runs_a_case_and_writes_the_table(
    tiny_env: Path, shared_cache: Path, tmp_path: Path
) -> None:
    """The whole path but the device: the same seeded run twice on the CPU agrees exactly."""
    out = tmp_path / "out"
    overrides = [f"paths.cache_dir={shared_cache}", "compress.dim=8", "data.num_negatives=8", "module.ks=[5]"]
    code = gpu_check.main(
        ["--device", "cpu", "--cases", "lightgcn", "--atol", "0", "--out", str(out), *overrides]
    )
    assert code == 0
    result = json.loads((out / "results.json").read_text())["cases"][0]
    assert result["name"] == "lightgcn" and result["status"] == "ok" and result["max_diff"] == 0.0
    assert any(k.startswith("test/ndcg@") for k in result["metrics"]["cpu"])
    assert "| lightgcn | ok |" in (out / "results.md").read_text()
