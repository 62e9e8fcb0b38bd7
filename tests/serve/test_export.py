"""Export of a run folder into a self-contained artifact, and retrieval over it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recsys_gnn.compress.quantize import dequantize_int8
from recsys_gnn.data.errors import UnknownIdError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.export import export_run, find_run_folder, main
from recsys_gnn.serve.artifact import Artifact
from recsys_gnn.tables import save_tables

N_USERS, N_ITEMS, DIM = 12, 30, 8
METRICS = {"test/ndcg@10": 0.25, "test/recall@10": 0.4, "val/ndcg@10": 0.3, "val/recall@10": 0.45}


def make_run(folder: Path, seed: int = 0, metrics: dict[str, float] | None = None, dim: int = DIM) -> Path:
    """Fabricate a finished run folder: tables of a tiny dataset with random embeddings + run files."""
    rng = np.random.default_rng(seed)
    pairs = []
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, size=6, replace=False)
        pairs += [[u, int(i)] for i in items]
    pairs = np.asarray(pairs, dtype=np.int64).reshape(N_USERS, 6, 2)
    train, val, test = (pairs[:, :4].reshape(-1, 2), pairs[:, 4].reshape(-1, 2), pairs[:, 5].reshape(-1, 2))
    data = InteractionData(
        n_users=N_USERS,
        n_items=N_ITEMS,
        user_ids=np.array([f"u{100 + u}" for u in range(N_USERS)]),
        item_ids=np.array([f"i{500 + i}" for i in range(N_ITEMS)]),
        item_texts=[f"text {i}" for i in range(N_ITEMS)],
        item_titles=[f"Title {i}" for i in range(N_ITEMS)],
        train=train,
        val=val,
        test=test,
        train_weight=np.ones(len(train), dtype=np.float32),
    )
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(N_USERS, dim, generator=gen)
    item_emb = torch.randn(N_ITEMS, dim, generator=gen)
    save_tables(folder / "tables", user_emb, item_emb, data)
    (folder / "config.yaml").write_text(
        f"seed: {seed}\ncompress:\n  name: fp32\n  dim: {dim}\n  quantize: null\n"
    )
    (folder / "metrics.json").write_text(json.dumps(metrics or METRICS))
    (folder / "protocol.json").write_text(json.dumps({"dataset": "tiny", "split": "by-hand"}))
    (folder / "run_info.json").write_text(json.dumps({"seed": seed, "trainable_params": 1234}))
    return folder


FAST = {"repeats": 5, "batch_size": 4, "warmup": 1}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def brute_force(run: Path, user: int, k: int) -> list[str]:
    """Top-k item ids of one user by numpy over the run's fp32 tables, known items removed."""
    emb = load_file(str(run / "tables" / "embeddings.safetensors"))
    known = load_file(str(run / "tables" / "known.safetensors"))
    scores = emb["user_emb"][user].numpy() @ emb["item_emb"].numpy().T
    seen = known["indices"][known["indptr"][user] : known["indptr"][user + 1]].numpy()
    scores[seen] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"i{500 + i}" for i in order]


def test_fp32_export_is_self_contained_and_matches_brute_force(run: Path, tmp_path: Path) -> None:
    out = export_run(run, out=tmp_path / "art", latency_args=FAST)
    assert {p.name for p in out.iterdir()} >= {
        "tables.safetensors",
        "known.safetensors",
        "index.json",
        "metadata.json",
        "compression.json",
        "compression.md",
    }
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    shutil.rmtree(run)  # loading needs nothing but the artifact folder
    art = Artifact.load(moved)
    meta = art.metadata
    assert meta["quantization"] == "fp32" and meta["dim"] == DIM
    assert meta["metrics"] == METRICS and meta["protocol"]["dataset"] == "tiny"
    assert meta["config"]["compress"]["dim"] == DIM and meta["recsys_gnn_version"]
    assert art.n_users == N_USERS and art.n_items == N_ITEMS


def test_recommend_excludes_seen_and_matches_numpy(run: Path, tmp_path: Path) -> None:
    art = Artifact.load(export_run(run, out=tmp_path / "art", latency_args=FAST))
    known = load_file(str(run / "tables" / "known.safetensors"))
    for u in range(N_USERS):
        seen = {f"i{500 + int(i)}" for i in known["indices"][known["indptr"][u] : known["indptr"][u + 1]]}
        recs = art.recommend(f"u{100 + u}", k=10)
        ids = [r["item"] for r in recs]
        assert not seen & set(ids)
        assert ids == brute_force(run, u, 10)
        assert [r["title"] for r in recs] == [f"Title {int(i[1:]) - 500}" for i in ids]
        scores = [r["score"] for r in recs]
        assert scores == sorted(scores, reverse=True)
    with_seen = [r["item"] for r in art.recommend("u100", k=N_ITEMS, exclude_seen=False)]
    assert len(with_seen) == N_ITEMS
    # all items requested with exclusions: only the unseen ones come back
    n_seen = int(known["indptr"][1] - known["indptr"][0])
    assert len(art.recommend("u100", k=N_ITEMS)) == N_ITEMS - n_seen


def test_cold_start_is_the_mean_of_item_vectors(run: Path, tmp_path: Path) -> None:
    art = Artifact.load(export_run(run, out=tmp_path / "art", latency_args=FAST))
    items = load_file(str(run / "tables" / "embeddings.safetensors"))["item_emb"].numpy()
    given = ["i503", "i517", "i529"]
    user = items[[3, 17, 29]].mean(0)
    scores = items @ user
    scores[[3, 17, 29]] = -np.inf
    expect = [f"i{500 + i}" for i in np.argsort(-scores, kind="stable")[:5]]
    recs = art.recommend_for_items(given, k=5)
    assert [r["item"] for r in recs] == expect
    np.testing.assert_allclose([r["score"] for r in recs], np.sort(scores)[::-1][:5], rtol=1e-5)
    assert "i503" in [r["item"] for r in art.recommend_for_items(given, k=N_ITEMS, exclude_given=False)]


def test_similar_is_cosine_without_the_item(run: Path, tmp_path: Path) -> None:
    art = Artifact.load(export_run(run, out=tmp_path / "art", latency_args=FAST))
    items = load_file(str(run / "tables" / "embeddings.safetensors"))["item_emb"].numpy()
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    cos = unit @ unit[7]
    cos[7] = -np.inf
    recs = art.similar("i507", k=4)
    assert [r["item"] for r in recs] == [f"i{500 + i}" for i in np.argsort(-cos)[:4]]
    np.testing.assert_allclose([r["score"] for r in recs], np.sort(cos)[::-1][:4], rtol=1e-5)
    assert len(art.similar("i507", k=N_ITEMS)) == N_ITEMS - 1


def test_bad_requests_name_the_problem(run: Path, tmp_path: Path) -> None:
    art = Artifact.load(export_run(run, out=tmp_path / "art", latency_args=FAST))
    with pytest.raises(UnknownIdError, match="'nobody'"):
        art.recommend("nobody")
    with pytest.raises(UnknownIdError, match="'i999'"):
        art.recommend_for_items(["i500", "i999"])
    with pytest.raises(UnknownIdError, match="'zzz'"):
        art.similar("zzz")
    for k in (0, N_ITEMS + 1):
        with pytest.raises(ValueError, match=f"got {k}"):
            art.recommend("u100", k=k)
    with pytest.raises(ValueError, match="empty history"):
        art.recommend_for_items([])


@pytest.mark.parametrize("quantization", ["fp16", "int8", "binary"])
def test_quantised_export(run: Path, tmp_path: Path, quantization: str) -> None:
    out = export_run(run, out=tmp_path / quantization, quantization=quantization, latency_args=FAST)
    art = Artifact.load(out)
    stored = load_file(str(out / "tables.safetensors"))
    emb = load_file(str(run / "tables" / "embeddings.safetensors"))
    width = math.ceil(DIM / 8) if quantization == "binary" else DIM
    dtype = {"fp16": torch.float16, "int8": torch.int8, "binary": torch.uint8}[quantization]
    assert stored["item_emb"].dtype == dtype and stored["item_emb"].shape == (N_ITEMS, width)
    if quantization == "int8":
        assert set(stored) == {"user_emb", "item_emb", "user_scale", "item_scale"}
        back = dequantize_int8(stored["item_emb"], stored["item_scale"])
        assert (back - emb["item_emb"]).abs().max() <= stored["item_scale"].max() / 2 + 1e-6
        # int8 ranking follows the dequantised float tables
        u = dequantize_int8(stored["user_emb"], stored["user_scale"])[0]
        scores = back @ u
        known = load_file(str(run / "tables" / "known.safetensors"))
        scores[known["indices"][: known["indptr"][1]]] = -float("inf")
        got = [r["score"] for r in art.recommend("u100", k=5)]
        np.testing.assert_allclose(got, torch.sort(scores, descending=True).values[:5].numpy(), rtol=1e-5)
    if quantization == "binary":
        # the scores are dot products of +-1 sign vectors: D - 2 * Hamming distance
        signs = torch.where(emb["item_emb"] > 0, 1.0, -1.0)
        recs = art.similar("i500", k=3)
        cos = (signs @ signs[0]) / DIM
        for r in recs:
            assert r["score"] == pytest.approx(float(cos[int(r["item"][1:]) - 500]))
    report = json.loads((out / "compression.json").read_text())
    row = report["rows"][0]
    assert row["quantization"] == quantization
    assert row["serve_bytes"] == sum(t.numel() * t.element_size() for t in stored.values())
    assert 0.0 <= row["top10_agreement_with_fp32"] <= 1.0
    assert row["ndcg@10"] == METRICS["test/ndcg@10"] and row["train_params"] == 1234


def test_report_compares_runs_against_a_teacher(run: Path, tmp_path: Path) -> None:
    teacher = make_run(
        tmp_path / "teacher", seed=1, metrics={"test/ndcg@10": 0.5, "test/recall@10": 0.6}, dim=24
    )
    out = export_run(
        run,
        out=tmp_path / "art",
        quantization="int8",
        compare=[("lm", teacher)],
        teacher="lm",
        latency_args=FAST,
    )
    report = json.loads((out / "compression.json").read_text())
    model, lm = report["rows"]
    assert model["ndcg_retained"] == pytest.approx(0.25 / 0.5) and lm["ndcg_retained"] == pytest.approx(1.0)
    assert lm["serve_bytes"] == N_USERS * 24 * 4 + N_ITEMS * 24 * 4
    assert model["serve_bytes"] == (N_USERS + N_ITEMS) * (DIM + 4)
    assert model["bytes_per_item"] == DIM + 4 and lm["bytes_per_item"] == 24 * 4
    md = (out / "compression.md").read_text()
    assert "| model (int8) |" in md and "| lm (fp32) |" in md and "50.0%" in md


def test_checkpoint_path_finds_the_run(run: Path, tmp_path: Path) -> None:
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not read")
    (run / "best_checkpoint.txt").write_text(str(ckpt))
    assert find_run_folder(ckpt) == run.resolve()
    other = run / "checkpoints" / "epoch3.ckpt"
    other.write_bytes(b"not read")
    with pytest.raises(ValueError, match="not the run's best checkpoint"):
        export_run(other, out=tmp_path / "art", latency_args=FAST)
    assert export_run(ckpt, out=tmp_path / "art", latency_args=FAST).is_dir()
    with pytest.raises(FileNotFoundError, match="no run folder"):
        find_run_folder(tmp_path)


def test_main_cli(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_art"
    argv = [str(run), "--out", str(out), "--quantize", "int8", "--repeats", "3", "--batch-size", "4"]
    assert main(argv) == 0
    assert json.loads((out / "metadata.json").read_text())["quantization"] == "int8"
    assert main(argv) == 1  # refuses to overwrite without --force
    assert main([*argv[:4], "fp16", *argv[5:], "--force"]) == 0
    assert json.loads((out / "metadata.json").read_text())["quantization"] == "fp16"
    assert main([str(run), "--out", str(tmp_path / "x"), "--teacher", "nobody"]) == 1
    with pytest.raises(SystemExit):
        main([str(run), "--quantize", "int4"])


def test_default_out_and_quantisation_from_config(run: Path) -> None:
    (run / "config.yaml").write_text("compress:\n  quantize: int8\n")
    out = export_run(run, latency_args=FAST)
    assert out == run.resolve() / "artifact_int8"
    assert Artifact.load(out).quantization == "int8"


def test_corrupted_artifact_is_refused(run: Path, tmp_path: Path) -> None:
    out = export_run(run, out=tmp_path / "art", latency_args=FAST)
    index = json.loads((out / "index.json").read_text())
    index["item_titles"][0] = "tampered"
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="checksum"):
        Artifact.load(out)
    assert Artifact.load(out, verify=False).item_titles[0] == "tampered"


def test_bad_compare_run_writes_nothing(run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_run(run, out=tmp_path / "art", compare=[("lm", tmp_path / "missing")], latency_args=FAST)
    assert not (tmp_path / "art").exists()
    with pytest.raises(ValueError, match="teacher 'lm' is none of the report rows"):
        export_run(run, out=tmp_path / "art", teacher="lm", latency_args=FAST)


@pytest.mark.parametrize("quantization", ["fp32", "fp16", "int8", "binary"])
def test_faiss_index_returns_what_brute_force_returns(run: Path, tmp_path: Path, quantization: str) -> None:
    pytest.importorskip("faiss", reason="faiss-cpu is an optional extra (pip install -e '.[faiss]')")
    out = export_run(run, out=tmp_path / quantization, quantization=quantization, latency_args=FAST)
    brute, fast = Artifact.load(out), Artifact.load(out, index="faiss")

    def same(got: list, ref: list) -> None:
        # ties (common for binary codes) may come back in another order: compare scores, then the items per score
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in ref], rel=1e-4, abs=1e-5)
        if len({round(r["score"], 4) for r in ref}) == len(ref):  # no ties: the exact same order
            assert [r["item"] for r in got] == [r["item"] for r in ref]

    for u in range(N_USERS):
        same(fast.recommend(f"u{100 + u}", k=5), brute.recommend(f"u{100 + u}", k=5))
    same(fast.recommend_for_items(["i503", "i517"], k=5), brute.recommend_for_items(["i503", "i517"], k=5))
    same(fast.similar("i507", k=5), brute.similar("i507", k=5))


@pytest.mark.parametrize("quantization", ["pq4", "opq4", "rq4"])
def test_pq_export_ranks_like_the_in_memory_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quantization: str
) -> None:
    """A PQ artifact stores codes + codebooks; loaded, it ranks as the codes learned in memory rank."""
    pytest.importorskip("faiss", reason="product quantisation needs faiss-cpu")
    from recsys_gnn.compress.quantize import Quantizer
    from recsys_gnn.tables import load_tables

    monkeypatch.setitem(globals(), "N_ITEMS", 300)  # more items than centroids: the codes are lossy
    run = make_run(tmp_path / "run")
    out = export_run(run, out=tmp_path / quantization, quantization=quantization, latency_args=FAST)
    stored = load_file(str(out / "tables.safetensors"))
    assert stored["item_emb"].dtype == torch.uint8 and stored["item_emb"].shape == (300, 4)
    width = DIM if quantization == "rq4" else DIM // 4  # residual codewords are full width
    assert stored["user_emb"].dtype == torch.float32 and stored["pq_codebooks"].shape == (4, 256, width)
    assert ("pq_rotation" in stored) == (quantization == "opq4")
    tables = load_tables(run / "tables")
    qz = Quantizer(quantization)
    items = qz.encode_items(tables.item_emb)  # learned again in memory: same data, same seed
    assert torch.equal(items.data, stored["item_emb"])
    decoded = qz.decode(items)
    art = Artifact.load(out)
    assert art.searcher.method == "faiss"  # PQ and RQ codes stay coded in RAM
    for u in range(N_USERS):
        scores = tables.user_emb[u] @ decoded.T
        seen = art.known_items(u)
        scores[torch.as_tensor(seen, dtype=torch.long)] = -float("inf")
        ref = torch.topk(scores, 5)
        got = art.recommend(f"u{100 + u}", k=5)
        assert [r["item"] for r in got] == [f"i{500 + int(i)}" for i in ref.indices]
        np.testing.assert_allclose([r["score"] for r in got], ref.values.numpy(), rtol=1e-5, atol=1e-6)
    report = json.loads((out / "compression.json").read_text())
    row = report["rows"][0]
    assert row["bytes_per_item"] == 4 and row["scoring"] == art.searcher.method
    assert row["serve_bytes"] == sum(t.numel() * t.element_size() for t in stored.values())
    brute, fast = (
        Artifact.load(out),
        Artifact.load(out, index="faiss"),
    )  # the exact faiss index over decoded rows
    assert [r["item"] for r in fast.similar("i507", k=5)] == [r["item"] for r in brute.similar("i507", k=5)]
    cold = art.recommend_for_items(["i503", "i517"], k=5)
    assert len(cold) == 5 and {"i503", "i517"}.isdisjoint(r["item"] for r in cold)
