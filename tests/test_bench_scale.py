"""The scale curve: one tiny real point, and the report files from made-up rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recsys_gnn.bench import scale


def test_one_tiny_point_measures_every_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GNN_RAW", "/nonexistent")  # the synthetic dataset needs no files
    out = tmp_path / "point.json"
    args = scale.build_parser().parse_args(
        ["--point", "20000", "--models", "lightgcn_id", "--json", str(out), "--work-dir", str(tmp_path)]
        + ["--steps", "2", "--eval-users", "64", "--text-dim", "8", "--mem-cap-gb", "16"]
    )
    args.model = "lightgcn_id"
    assert scale.run_point(args) == 0
    row = json.loads(out.read_text())
    assert row["status"] == "ok" and (row["users"], row["items"]) == (2000, 2000)
    assert row["timed_steps"] == 2 and row["epoch_s"] == pytest.approx(row["step_s"] * row["steps_per_epoch"])
    assert row["eval_sampled"] == 64 and row["eval_s"] > row["eval_embed_s"] > 0
    assert set(row["peak_rss_gb_by_phase"]) == {"data", "setup", "train", "eval"}


def test_a_fanout_point_trains_on_neighbour_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GNN_RAW", "/nonexistent")
    out = tmp_path / "point.json"
    args = scale.build_parser().parse_args(
        ["--point", "20000", "--models", "compressor", "--json", str(out), "--work-dir", str(tmp_path)]
        + ["--steps", "2", "--eval-users", "16", "--text-dim", "8", "--mem-cap-gb", "16", "--fanout=3,-1"]
    )
    args.model = "compressor"
    assert scale.run_point(args) == 0
    row = json.loads(out.read_text())
    assert row["status"] == "ok" and row["fanout"] == "3,all" and row["timed_steps"] == 2


def test_fanout_option_parsing() -> None:
    assert scale.parse_fanout("10") == 10 and scale.parse_fanout("10,-1") == [10, -1]
    assert scale.fanout_override(None) == [] and scale.fanout_override(10) == ["model.fanout=10"]
    assert scale.fanout_override([10, -1]) == ["model.fanout=[10,-1]"]
    assert scale.fanout_label(None) == "full" and scale.fanout_label([10, -1]) == "10,all"
    with pytest.raises(SystemExit):
        scale.build_parser().parse_args(["--fanout", "ten"])


def _row(n: int, model: str, epoch: float, status: str = "ok") -> dict:
    row = {**scale.point_sizes(n), "model": model, "status": status}
    if status == "ok":
        row.update(timed_steps=3, step_s=epoch / 10, epoch_s=epoch, eval_s=1.0, peak_rss_gb=n / 1e5)
    return row


def test_report_files_largest_size_and_linear_ratio(tmp_path: Path) -> None:
    rows = [
        _row(10**5, "m", 10.0),
        _row(10**6, "m", 1000.0),
        _row(10**7, "m", 0, "memory cap 16.0 GB passed in setup"),
    ]
    base = rows[0]
    for r in rows[:2]:
        r["epoch_vs_linear"] = (r["epoch_s"] / base["epoch_s"]) / (r["interactions"] / base["interactions"])
    meta = {"command": "x", "cpu": "cpu", "cores": 2, "mem_gb": 24.0, "threads": 1, "mem_cap_gb": 16.0}
    meta.update(text_dim=384, steps=10, step_budget=60.0, eval_users=512)
    md, cs, js, png = scale.write_outputs(rows, meta, tmp_path, "scale")
    text = md.read_text()
    assert "largest size that trains here: 1,000,000 interactions" in text
    assert "| model | fanout | status |" in text and "full-graph propagation at every step" in text
    assert "10,000,000: memory cap 16.0 GB passed in setup" in text
    with cs.open() as f:
        table = list(csv.DictReader(f))
    assert [float(r["epoch_vs_linear"] or "nan") for r in table][:2] == [1.0, 10.0]
    assert png.stat().st_size > 1000 and json.loads(js.read_text())["rows"][2]["status"].startswith("memory")
