"""The bench's loopback load test (:mod:`recsys_gnn.bench.load`) with tiny request counts on a tiny artifact.

The slow test also runs ``python -m recsys_gnn.serve --workers 2`` end to end (the app factory in workers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_export import FAST, make_run

from recsys_gnn.bench.load import (
    LoadSettings,
    Service,
    drive,
    load_records,
    load_test,
    recommend_paths,
    start_service,
)
from recsys_gnn.bench.phases import BenchSettings
from recsys_gnn.export import export_run


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("load")
    return export_run(make_run(root / "run"), out=root / "art", latency_args=FAST)


@pytest.fixture(scope="module")
def service(artifact_dir: Path) -> Iterator[Service]:
    with start_service(artifact_dir, workers=1) as svc:
        yield svc
    assert svc.proc.poll() is not None  # stopped when the block ended


def test_recommend_paths(artifact_dir: Path) -> None:
    paths = recommend_paths(artifact_dir, n=5, k=3)
    assert len(paths) == 5 and all(p.startswith("/recommend?user=u1") and p.endswith("&k=3") for p in paths)


@pytest.mark.parametrize("clients", [1, 3])
def test_drive_counts_requests(service: Service, artifact_dir: Path, clients: int) -> None:
    r = drive(service.port, recommend_paths(artifact_dir), requests=30, clients=clients, warmup=2)
    assert r["errors"] == 0 and r["requests"] == 30 and not r["stopped_by_time"]
    assert r["requests_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] and math.isfinite(r["p99_ms"])


def test_drive_stops_at_the_time_cap_and_counts_errors(service: Service) -> None:
    r = drive(service.port, ["/recommend?user=ghost"], requests=10**6, clients=2, max_seconds=0.5, warmup=1)
    assert r["stopped_by_time"] and r["wall_s"] < 5
    assert r["requests"] == 0 and r["errors"] > 0  # 404s are errors


def test_load_records(artifact_dir: Path, tmp_path: Path) -> None:
    extra = {"load": {"requests": 20, "clients": (2,), "workers": (1,), "warmup": 2}}
    recs = load_records(BenchSettings(work_dir=tmp_path, extra=extra), "tiny", "tiny artifact", artifact_dir)
    assert [r["metric"] for r in recs] == [
        "HTTP requests/s",
        "HTTP latency p50",
        "HTTP latency p99",
        "HTTP errors",
    ]
    assert all(r["phase"] == "load" and r["name"] == "tiny artifact, 1 worker, 2 clients" for r in recs)
    assert recs[0]["value"] > 0 and recs[3]["value"] == 0 and recs[0]["server_cpu_s"] > 0
    assert load_records(BenchSettings(extra={"load": {"requests": 0}}), "tiny", "x", artifact_dir) == []
    failed = load_records(BenchSettings(), "tiny", "missing", tmp_path / "nothing")
    assert len(failed) == 1 and "error" in failed[0]


@pytest.mark.slow
def test_load_test_two_workers(artifact_dir: Path) -> None:
    load = LoadSettings(requests=40, clients=(1, 3), workers=(2,), max_seconds=10, warmup=2)
    results = load_test(artifact_dir, load)
    assert [(r["workers"], r["clients"]) for r in results] == [(2, 1), (2, 3)]
    assert all(r["errors"] == 0 and r["requests"] == 40 for r in results)
