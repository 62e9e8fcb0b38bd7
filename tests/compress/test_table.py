"""The study-wide compression table: rows per model x precision, seeds merged, teacher share, latency re-timed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from recsys_gnn.compress.quantize import Quantizer
from recsys_gnn.compress.report import compression_report, report_row, write_report
from recsys_gnn.compress.table import build_table, main

LM = "recsys_gnn.models.baselines.lm_content.LMContent"
GNN = "recsys_gnn.models.compressor.GNNCompressor"
N_USERS, N_ITEMS = 6, 12
LATENCY = {
    "k": 10, "repeats": 1, "warmup": 0, "p50_ms": 7.0, "p99_ms": 9.0, "mean_ms": 7.0, "batch_size": 4,
    "batches": 1, "throughput_users_per_s": 100.0, "torch_threads": 1, "device": "cpu", "cpu": "x",
}  # fmt: skip


def _job(
    sweep: Path, name: str, target: str, seed: int, dim: int, ndcg: dict[str, float], teacher_ndcg: float
) -> None:
    """A finished run folder: config, metrics, protocol, tables and a compression report like the pipeline's."""
    folder = sweep / name
    (folder / "tables").mkdir(parents=True)
    config = {"seed": seed, "dataset": {"name": "tiny"}, "model": {"_target_": target}}
    if target == GNN:
        config["gnn"] = {"_target_": "recsys_gnn.models.gnn.gcn.GCN"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"test/ndcg@10": ndcg["fp32"], "test/recall@10": 0.5}
    metrics.update({f"test_{s}/ndcg@10": v for s, v in ndcg.items() if s != "fp32"})
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "protocol.json").write_text(json.dumps({"split": {"name": "auto:random"}, "ks": [10]}))
    users, items = torch.randn(N_USERS, dim), torch.randn(N_ITEMS, dim)
    save_file({"user_emb": users, "item_emb": items}, str(folder / "tables" / "embeddings.safetensors"))
    indptr = torch.zeros(N_USERS + 1, dtype=torch.long)
    save_file(
        {"indptr": indptr, "indices": torch.zeros(0, dtype=torch.long)},
        str(folder / "tables" / "known.safetensors"),
    )
    ids = {"user_ids": [str(u) for u in range(N_USERS)], "item_ids": [str(i) for i in range(N_ITEMS)]}
    (folder / "tables" / "index.json").write_text(json.dumps({**ids, "item_titles": ids["item_ids"]}))
    rows = []
    label = target.rsplit(".", 1)[-1]
    for scheme, value in ndcg.items():
        tensors = Quantizer(scheme).compress({"user_emb": users, "item_emb": items})
        m = {"test/ndcg@10": value, "test/recall@10": 0.5}
        rows.append(
            report_row(f"{label} {scheme}", serve_tensors=tensors, n_items=N_ITEMS, train_params=dim * 3,
                       lm_at_serving=False, metrics=m, latency=LATENCY, quantization=scheme, dim=dim)
        )  # fmt: skip
    lm = {"test/ndcg@10": teacher_ndcg, "test/recall@10": 0.1}
    t_tables = {"user_emb": torch.randn(N_USERS, 8), "item_emb": torch.randn(N_ITEMS, 8)}
    common = {
        "n_items": N_ITEMS,
        "train_params": 0,
        "metrics": lm,
        "latency": LATENCY,
        "quantization": "fp32",
        "dim": 8,
    }
    rows.append(report_row("lm_content", serve_tensors=t_tables, lm_at_serving=False, **common))
    with_lm = {**t_tables, "lm.w": torch.zeros(100, 8)}
    rows.append(
        report_row(
            "lm_content + LM for new items",
            serve_tensors=with_lm,
            item_keys=["item_emb"],
            lm_at_serving=True,
            **common,
        )
    )
    write_report(compression_report(rows, teacher="lm_content"), folder)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    _job(root, "teacher", LM, 1, 8, {"fp32": 0.1}, teacher_ndcg=0.1)
    _job(root, "gcn_s1", GNN, 1, 4, {"fp32": 0.2, "int8": 0.18}, teacher_ndcg=0.1)
    _job(root, "gcn_s2", GNN, 2, 4, {"fp32": 0.4, "int8": 0.38}, teacher_ndcg=0.1)
    (root / "dead").mkdir()
    (root / "dead" / "FAILED").write_text("RuntimeError: boom\n")
    return root


def test_rows_per_model_and_precision_with_seeds_merged(sweep: Path, tmp_path: Path) -> None:
    rows = build_table(sweep, tmp_path / "out", remeasure=False)
    by = {(r["model"], r["precision"]): r for r in rows}
    assert set(by) == {
        ("LMContent", "fp32"),
        ("LMContent + LM for new items", "fp32"),
        ("GNNCompressor GCN", "fp32"),
        ("GNNCompressor GCN", "int8"),
    }  # the teacher rows embedded in every run's report appear once, from the teacher's own run
    gcn = by[("GNNCompressor GCN", "fp32")]
    assert gcn["n"] == 2 and gcn["seeds"] == "1,2"
    assert gcn["ndcg@10"] == pytest.approx(0.3)
    assert gcn["ndcg@10_std"] == pytest.approx(torch.tensor([0.2, 0.4]).std().item())
    assert gcn["ndcg_retained"] == pytest.approx(3.0)
    assert gcn["serve_bytes"] == (N_USERS + N_ITEMS) * 4 * 4
    int8 = by[("GNNCompressor GCN", "int8")]
    assert int8["bytes_per_item"] == 4 + 4  # 4 int8 values + one fp32 scale
    assert int8["p50_ms"] == 7.0  # recorded, not re-timed
    lm_row = by[("LMContent + LM for new items", "fp32")]
    assert (
        lm_row["lm_at_serving"] is True and lm_row["serve_bytes"] > by[("LMContent", "fp32")]["serve_bytes"]
    )
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| GNNCompressor GCN | 4 | int8 | 2 |" in md
    assert "dead: failed (RuntimeError: boom)" in md
    assert "auto:random" in md  # the protocol is stated
    with (tmp_path / "out" / "report.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "out" / "quality_vs_bytes_tiny.png").is_file()


def test_latency_is_re_timed_from_the_saved_tables(sweep: Path, tmp_path: Path) -> None:
    main([str(sweep), "--out", str(tmp_path / "out"), "--repeats", "5", "--threads", "1"])
    info = json.loads((tmp_path / "out" / "report.json").read_text())
    assert info["command"].startswith("python -m recsys_gnn.compress.table")
    for row in info["per_seed_rows"]:
        assert row["p50_ms"] != 7.0 and row["p50_ms"] > 0
        assert row["torch_threads"] == 1


def test_missing_tables_and_empty_sweeps_are_explained(sweep: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(sweep / "gcn_s1" / "tables")
    with pytest.raises(FileNotFoundError, match="gcn_s1.*tables.*--latency recorded"):
        build_table(sweep, tmp_path / "out", remeasure=True)
    empty = tmp_path / "empty" / "job"
    empty.mkdir(parents=True)
    (empty / "FAILED").write_text("x")
    with pytest.raises(FileNotFoundError, match="no finished job with compression.json"):
        build_table(tmp_path / "empty", tmp_path / "out2")


def test_students_of_one_teacher_config_share_a_row_across_seeds() -> None:
    from recsys_gnn.aggregate import Job
    from recsys_gnn.compress.table import _label

    def student(seed: int) -> Job:
        config = {
            "model._target_": "recsys_gnn.models.distill.DistilledCompressor",
            "gnn._target_": "x.gcn.GCN",
        }
        return Job(
            name=f"s{seed}",
            path=Path("."),
            status="ok",
            config={**config, "model.teacher": f"a/dim64_seed{seed}"},
        )

    assert _label(student(1)) == _label(student(2)) == "DistilledCompressor GCN teacher=dim64"


def test_share_of_the_best_fp32_model_and_the_pareto_front(sweep: Path, tmp_path: Path) -> None:
    _job(sweep, "gcn_pq", GNN, 3, 4, {"fp32": 0.3, "pq4": 0.27}, teacher_ndcg=0.1)
    rows = build_table(sweep, tmp_path / "out", remeasure=False)
    by = {(r["model"], r["precision"]): r for r in rows}
    gcn, pq = by[("GNNCompressor GCN", "fp32")], by[("GNNCompressor GCN", "pq4")]
    assert gcn["ndcg_of_best"] == pytest.approx(1.0)  # the best fp32 row of the dataset (seeds 1-3: 0.3)
    assert by[("LMContent", "fp32")]["ndcg_of_best"] == pytest.approx(0.1 / 0.3)
    assert pq["ndcg_of_best"] == pytest.approx(0.9) and pq["ndcg_retained"] == pytest.approx(2.7)
    assert pq["bytes_per_item"] == 4  # 4 one-byte codes; the codebooks count in serve bytes
    pareto = {key for key, r in by.items() if r["pareto"]}
    # pq4 (4 B, 0.27) and int8 (8 B, 0.28) and fp32 (16 B, 0.3) each beat everything smaller; the LM rows lose
    assert pareto == {
        ("GNNCompressor GCN", "pq4"),
        ("GNNCompressor GCN", "int8"),
        ("GNNCompressor GCN", "fp32"),
    }
    md = (tmp_path / "out" / "report.md").read_text()
    assert "% of best fp32 NDCG@10" in md and "| 90 | 270 | yes |" in md
