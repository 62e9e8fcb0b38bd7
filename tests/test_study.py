"""The resumable study driver: grid points, resume, choice of the tuned point, and the results table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from recsys_gnn import study


def _spec(tmp_path: Path) -> Path:
    spec = {
        "name": "t",
        "out": str(tmp_path / "out"),
        "runs": str(tmp_path / "runs"),
        "tune_seed": 1,
        "seeds": [1, 2],
        "datasets": {"video": ["domain=video"]},
        "common": ["trainer.max_epochs=50"],
        "models": {
            "mf": {"kind": "id", "overrides": ["model=mf"], "grid": {"optimizer.lr": [0.1, 0.2]}},
            "comp": {"kind": "text", "overrides": ["model=compressor"]},
        },
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _finish(job: study.Job, ndcg: float, val: float, epochs: int = 12) -> None:
    job.folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "test/ndcg@10": ndcg,
        "test/recall@10": ndcg * 2,
        "test/recall@20": ndcg * 3,
        "val/ndcg@10": val,
        "fit/epochs": float(epochs),
        "fit/seconds": 3.0,
    }
    (job.folder / "metrics.json").write_text(json.dumps(metrics))
    (job.folder / "csv").mkdir(exist_ok=True)
    (job.folder / "csv" / "metrics.csv").write_text("epoch,val/ndcg@10\n0,0.1\n1,0.3\n2,0.2\n")


def test_grid_points_are_the_full_product_in_order() -> None:
    pts = study.grid_points({"a": [1, 2], "b": ["x", "y"]})
    assert pts == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert study.grid_points(None) == [{}] and study.point_name({}) == "default"
    assert study.point_name({"a": 1, "b": "x"}) == "a=1,b=x"


def test_spec_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"name": "x", "out": "o", "runs": "r", "datasets": {}, "models": {"m": {"kind": "?"}}})
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        study.Spec.load(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "out": "o"}))
    with pytest.raises(ValueError, match="lacks"):
        study.Spec.load(bad)


def test_tune_choose_final_and_table(tmp_path: Path) -> None:
    spec = study.Spec.load(_spec(tmp_path))
    tune = study.tune_jobs(spec, ["video"], ["mf", "comp"])
    assert [j.model for j in tune] == ["mf", "mf", "comp"]
    assert "hydra.run.dir='" + str(tune[0].folder) + "'" in tune[0].argv
    assert "seed=1" in tune[0].argv and "optimizer.lr=0.1" in tune[0].argv
    # nothing finished: nothing chosen; the table names the missing cells
    assert study.choose(spec, ["video"], ["mf", "comp"]) == {}
    _finish(tune[0], 0.10, val=0.20)
    assert "video/mf" not in study.choose(spec, ["video"], ["mf"])  # one of two grid points finished
    _finish(tune[1], 0.12, val=0.25)  # better on validation: chosen, whatever its test value
    _finish(tune[2], 0.15, val=0.30)
    chosen = study.choose(spec, ["video"], ["mf", "comp"])
    assert chosen["video/mf"]["point"] == {"optimizer.lr": 0.2}
    final = study.final_jobs(spec, chosen, ["video"], ["mf", "comp"])
    # seed 1 reuses the tune job of the chosen point; seed 2 gets its own folder
    assert final[0].folder == tune[1].folder and final[1].folder.name == "seed=2"
    assert study.run_jobs(final[:1], dry_run=True) == (0, 0)  # finished jobs are skipped
    _finish(final[1], 0.14, val=0.26, epochs=50)  # reached the maximum
    text, rows = study.table(spec, chosen, ["video"], ["mf", "comp"])
    assert "| mf | id | 2 | 0.1300 ± 0.0141 |" in text
    assert "HIT MAX" in text  # mean epochs 31 but one run reached 50
    assert "video/comp seed=2" in text  # missing cell named
    assert "**1.154**" in text  # best text 0.15 / best id 0.13
    assert rows[0]["best_epoch_mean"] == 2.0  # epoch index 1 (0-based) of the CSV log, reported 1-based


def test_best_epoch_reads_the_csv_log(tmp_path: Path) -> None:
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,train/loss,val/ndcg@10\n0,1.0,\n0,,0.1\n1,,0.05\n")
    assert study.best_epoch(tmp_path) == 0
    assert study.best_epoch(tmp_path / "nothing") is None


def test_recorded_choices_fill_cells_without_tune_folders(tmp_path: Path) -> None:
    spec = study.Spec.load(_spec(tmp_path))
    spec.out.mkdir(parents=True)
    recorded = {
        "video/mf": {"point": {"optimizer.lr": 0.1}, "val/ndcg@10": 0.2, "tried": 2, "grid": {}},
        "video/gone": {"point": {}, "val/ndcg@10": 0.1, "tried": 1, "grid": {}},  # not in the spec
    }
    (spec.out / "chosen.json").write_text(json.dumps(recorded))
    merged = study.merge_recorded(spec, {})
    assert set(merged) == {"video/mf"} and merged["video/mf"]["recorded"] is True
    # finished tune jobs win over the record
    for job, val in zip(study.tune_jobs(spec, ["video"], ["mf"]), (0.1, 0.3), strict=True):
        _finish(job, 0.1, val=val)
    merged = study.merge_recorded(spec, study.choose(spec, ["video"], ["mf"]))
    assert merged["video/mf"]["point"] == {"optimizer.lr": 0.2} and "recorded" not in merged["video/mf"]
    final = study.final_jobs(spec, study.merge_recorded(spec, {}), ["video"], ["mf"])
    _finish(final[1], 0.12, val=0.2)
    text, _ = study.table(spec, study.merge_recorded(spec, {}), ["video"], ["mf"])
    assert "optimizer.lr=0.1 (recorded)" in text


def test_a_final_folder_of_another_point_is_stale(tmp_path: Path) -> None:
    spec = study.Spec.load(_spec(tmp_path))
    job = study.final_jobs(spec, {"video/mf": {"point": {"optimizer.lr": 0.1}}}, ["video"], ["mf"])[1]
    _finish(job, 0.1, val=0.2)
    assert job.done  # no point.json: an older finished job, taken as it is
    (job.folder / "point.json").write_text(json.dumps({"optimizer.lr": 0.2}))
    assert not job.done
    (job.folder / "point.json").write_text(json.dumps({"optimizer.lr": 0.1}))
    assert job.done


def test_restore_seeds_unfinished_folders_from_the_committed_copies(tmp_path: Path) -> None:
    spec = study.Spec.load(_spec(tmp_path))
    chosen = {"video/mf": {"point": {"optimizer.lr": 0.1}}, "video/comp": {"point": {}}}
    jobs = study.final_jobs(spec, chosen, ["video"], ["mf", "comp"])
    for job in jobs:
        _finish(job, 0.1, val=0.2)
        (job.folder / "point.json").write_text(json.dumps(job.point))
    study.copy_runs(spec, jobs)
    # a fresh checkout: no job folders; the copy of another point is not restored
    (spec.out / "runs" / "video" / "comp" / "seed=2" / "point.json").write_text(json.dumps({"x": 1}))
    shutil.rmtree(tmp_path / "runs")
    assert study.restore_runs(spec, jobs) == 3
    assert [j.done for j in jobs] == [True, True, True, False]
    assert (jobs[0].folder / "RESTORED").is_file()
    assert study.best_epoch(jobs[0].folder) == 1  # the epoch log comes back where best_epoch reads it
    assert study.restore_runs(spec, jobs) == 0  # finished folders are left alone
