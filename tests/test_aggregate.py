"""Sweep aggregation on hand-made job folders with known numbers: mean/std per cell, failures listed, plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from recsys_gnn.aggregate import aggregate, find_jobs, main, varying_keys

GCN = "recsys_gnn.models.gnn.gcn.GCN"
LIGHTGCN = "recsys_gnn.models.gnn.lightgcn.LightGCN"
PROTOCOL = {"dataset": "tiny", "split": {"name": "random"}, "counts": {"users": 9, "items": 7}, "ks": [10]}

# (gnn, dim, seed) -> test/ndcg@10; recall is ndcg * 2.
NDCG = {
    (GCN, 16, 1): 0.1,
    (GCN, 16, 2): 0.2,
    (GCN, 16, 3): 0.3,
    (GCN, 64, 1): 0.4,
    (GCN, 64, 2): 0.6,
    (LIGHTGCN, 16, 1): 0.25,
    (LIGHTGCN, 64, 1): 0.5,
    (LIGHTGCN, 64, 2): 0.7,
}


def _config(job: Path, gnn: str, dim: int, seed: int) -> dict:
    gnn_cfg = {"_target_": gnn, "num_layers": 2, **({"alpha": 1.0} if gnn == GCN else {})}
    return {
        "seed": seed,
        "gnn": gnn_cfg,
        "compress": {"dim": dim},
        "model": {"dim": dim},
        "paths": {"output_dir": str(job)},
        "callbacks": {"model_checkpoint": {"dirpath": f"{job}/checkpoints"}},
        "monitor": "val/ndcg@10",
    }


def _write_job(
    root: Path, num: int, gnn: str, dim: int, seed: int, ndcg: float | None, failed: str = ""
) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / "config.yaml").write_text(yaml.safe_dump(_config(job, gnn, dim, seed)))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": "${oc.env:NOPE}"}))  # never a job
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"gnn={gnn}", f"seed={seed}"]))
    (job / "run_info.json").write_text(json.dumps({"seed": seed}))
    (job / "protocol.json").write_text(json.dumps(PROTOCOL))
    wandb_files = job / "wandb" / "offline-run-x" / "files"  # nested config.yaml of another tool: not a job
    wandb_files.mkdir(parents=True)
    (wandb_files / "config.yaml").write_text("a: 1\n")
    if failed:
        (job / "FAILED").write_text(failed + "\n")
    elif ndcg is not None:
        metrics = {
            "test/ndcg@10": ndcg,
            "test/recall@10": 2 * ndcg,
            "val/ndcg@10": ndcg / 2,
            "fit/epochs": 3.0,
        }
        (job / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    num = 0
    for (gnn, dim, seed), ndcg in NDCG.items():
        _write_job(root, num, gnn, dim, seed, ndcg)
        num += 1
    _write_job(root, num, GCN, 16, 4, None, failed="RuntimeError: CUDA out of memory")
    _write_job(root, num + 1, LIGHTGCN, 16, 2, None)  # killed: no metrics.json, no FAILED
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_finds_jobs_and_their_status(sweep: Path) -> None:
    jobs = find_jobs(sweep)
    assert [j.name for j in jobs] == [
        str(i) for i in range(len(NDCG) + 2)
    ]  # natural order, no nested folders
    assert [j.status for j in jobs].count("ok") == len(NDCG)
    assert jobs[-2].status == "failed" and jobs[-2].reason == "RuntimeError: CUDA out of memory"
    assert jobs[-1].status == "incomplete" and "no metrics.json" in jobs[-1].reason
    assert jobs[0].overrides == [f"gnn={GCN}", "seed=1"]


def test_default_group_keys_skip_seed_paths_and_duplicates(sweep: Path) -> None:
    ok = [j for j in find_jobs(sweep) if j.status == "ok"]
    # model.dim repeats compress.dim; gnn.alpha (GCN only) follows gnn._target_; seed/paths/dirpath ignored.
    assert varying_keys(ok) == ["gnn._target_", "compress.dim"]


def test_mean_std_per_cell(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "experiments" / "study"
    aggregate(sweep, out=out, by=["gnn._target_", "compress.dim"], metrics=["test/ndcg@10", "test/recall@10"])
    rows = {(r["gnn._target_"], int(r["compress.dim"])): r for r in _rows(out / "results.csv")}
    assert set(rows) == {(GCN, 16), (GCN, 64), (LIGHTGCN, 16), (LIGHTGCN, 64)}
    for (gnn, dim), row in rows.items():
        values = [v for (g, d, _), v in NDCG.items() if (g, d) == (gnn, dim)]
        mean = sum(values) / len(values)
        std = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            if len(values) > 1
            else math.nan
        )
        assert int(row["n_runs"]) == int(row["test/ndcg@10_n"]) == len(values)
        assert float(row["test/ndcg@10_mean"]) == pytest.approx(mean)
        assert float(row["test/recall@10_mean"]) == pytest.approx(2 * mean)
        if len(values) > 1:
            assert float(row["test/ndcg@10_std"]) == pytest.approx(std)
        else:
            assert math.isnan(float(row["test/ndcg@10_std"]))
    assert float(rows[(GCN, 16)]["test/ndcg@10_std"]) == pytest.approx(0.1)  # 0.1, 0.2, 0.3
    assert rows[(GCN, 16)]["seeds"] == "1,2,3"
    assert rows[(GCN, 16)]["n_failed"] == "1" and rows[(LIGHTGCN, 16)]["n_failed"] == "1"
    assert rows[(GCN, 64)]["n_failed"] == "0"

    md = (out / "results.md").read_text()
    assert "| GCN | 16 | 3 | 1 | 1,2,3 | 0.2000 ± 0.1000 | 0.4000 ± 0.2000 |" in md
    assert "RuntimeError: CUDA out of memory" in md and "no metrics.json" in md
    assert "- dataset: tiny" in md and "counts: users=9, items=7" in md
    for name in ("bar_test_ndcg_10.png", "bar_test_recall_10.png", "dim_test_ndcg_10.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = _rows(out / "runs.csv")
    assert [r["status"] for r in runs].count("failed") == 1 and len(runs) == len(NDCG) + 2
    assert (out / "runs" / "0" / "config.yaml").is_file() and (out / "runs" / "8" / "FAILED").is_file()
    info = json.loads((out / "aggregate.json").read_text())
    assert info["jobs"] == {"total": len(NDCG) + 2, "ok": len(NDCG), "failed": 1}
    assert (out / "multirun.yaml").is_file()


def test_cli_default_output_is_not_read_back_as_jobs(sweep: Path) -> None:
    main([str(sweep), "--by", "gnn._target_", "--metrics", "val/ndcg@10"])
    main([str(sweep), "--by", "gnn._target_", "--metrics", "val/ndcg@10"])  # again, with aggregate/ present
    out = sweep / "aggregate"
    rows = {r["gnn._target_"]: r for r in _rows(out / "results.csv")}
    gcn = [v / 2 for (g, _, _), v in NDCG.items() if g == GCN]
    assert int(rows[GCN]["n_runs"]) == len(gcn)
    assert float(rows[GCN]["val/ndcg@10_mean"]) == pytest.approx(sum(gcn) / len(gcn))
    assert json.loads((out / "aggregate.json").read_text())["command"].startswith(
        "python -m recsys_gnn.aggregate"
    )
    assert (out / "dim_val_ndcg_10.png").is_file()  # dim varies: one line per gnn


def test_no_dim_plot_when_dim_is_constant(sweep: Path, tmp_path: Path) -> None:
    jobs_16 = tmp_path / "only16"
    for i, ((gnn, dim, seed), ndcg) in enumerate(NDCG.items()):
        if dim == 16:
            _write_job(jobs_16, i, gnn, dim, seed, ndcg)
    aggregate(jobs_16, out=tmp_path / "o", metrics=["test/ndcg@10"])
    assert (tmp_path / "o" / "bar_test_ndcg_10.png").exists()
    assert not (tmp_path / "o" / "dim_test_ndcg_10.png").exists()


def test_clear_errors(sweep: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="gnn.heads"):
        aggregate(sweep, out=tmp_path / "o", by=["gnn.heads"])
    with pytest.raises(KeyError, match="test/auc"):
        aggregate(sweep, out=tmp_path / "o", metrics=["test/auc"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        aggregate(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no job folders"):
        aggregate(tmp_path / "empty")


def test_a_new_aggregation_removes_the_runs_and_plots_of_the_previous_one(
    sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    aggregate(sweep, out=out, by=["gnn._target_"], metrics=["val/ndcg@10", "test/ndcg@10"])
    (out / "run.sh").write_text("# the study's own script stays\n")
    stale = out / "runs" / "job_of_an_older_sweep"
    stale.mkdir(parents=True)
    assert (out / "bar_test_ndcg_10.png").is_file()
    aggregate(sweep, out=out, by=["gnn._target_"], metrics=["val/ndcg@10"])
    assert not stale.exists() and not (out / "bar_test_ndcg_10.png").exists()
    assert (out / "bar_val_ndcg_10.png").is_file() and (out / "run.sh").is_file()
    assert len(list((out / "runs").iterdir())) == len(find_jobs(sweep))
