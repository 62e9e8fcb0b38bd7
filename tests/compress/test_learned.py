"""Ranking-trained codebooks: the loss goes down, codes keep their shape and bytes, the stored tables are scored as
decode-then-dot by the served scorer, and bad input fails with one clear line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from recsys_gnn.compress import learned
from recsys_gnn.compress.learned import (
    CodedTables,
    LearnSettings,
    check_run,
    check_schemes,
    evaluate_codes,
    ranking_loss,
    train_codes,
)
from recsys_gnn.compress.quantize import PQ_SUBSPACES, Quantizer, pq_decode
from recsys_gnn.compress.search import Searcher
from recsys_gnn.data.errors import ConfigError, DataError
from recsys_gnn.data.interactions import InteractionData

pytest.importorskip("faiss", reason="product quantisation needs faiss-cpu (the [faiss] extra)")

DIM = 16


def clustered(
    n_users: int = 48, n_items: int = 320, clusters: int = 8, seed: int = 0
) -> tuple[InteractionData, torch.Tensor, torch.Tensor]:
    """Users and items around ``clusters`` centres; each user's 10 items come from its own cluster (8 train, 1 val,
    1 test). Returns the data and unit-norm user ``(U, 16)`` / item ``(I, 16)`` tables (a cosine run's tables)."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    centres = F.normalize(torch.randn(clusters, DIM, generator=gen), dim=1)
    item_cluster = np.arange(n_items) % clusters
    items = F.normalize(centres[item_cluster] + 0.6 * torch.randn(n_items, DIM, generator=gen), dim=1)
    user_cluster = np.arange(n_users) % clusters
    users = F.normalize(centres[user_cluster] + 0.3 * torch.randn(n_users, DIM, generator=gen), dim=1)
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(item_cluster == user_cluster[u])
        rows += [[u, int(i)] for i in rng.choice(own, size=10, replace=False)]
    pairs = np.asarray(rows, dtype=np.int64).reshape(n_users, 10, 2)
    train, val, test = pairs[:, :8].reshape(-1, 2), pairs[:, 8], pairs[:, 9]
    data = InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        item_texts=[f"text {i}" for i in range(n_items)],
        item_titles=[f"t{i}" for i in range(n_items)],
        train=train,
        val=val,
        test=test,
        train_weight=np.ones(len(train), dtype=np.float32),
    )
    return data, users, items


@pytest.fixture(scope="module")
def tiny() -> tuple[InteractionData, torch.Tensor, torch.Tensor]:
    return clustered()


def full_loss(model: CodedTables, data: InteractionData, teacher: torch.Tensor, loss: str) -> float:
    positives = torch.from_numpy(data.matrix(data.train).toarray())  # (U, I)
    with torch.no_grad():
        logits = model.scores(torch.arange(data.n_users)) / 0.1
        return float(ranking_loss(logits, positives, teacher / 0.1, loss))


@pytest.mark.parametrize("loss", ["softmax", "distill", "softmax+distill"])
@pytest.mark.parametrize("scheme", ["pq4", "rq4"])
def test_training_steps_lower_the_loss(tiny, scheme: str, loss: str) -> None:
    data, users, items = tiny
    model = CodedTables(scheme, users, Quantizer(scheme).encode_items(items), "cosine")
    teacher = users @ items.T
    positives = torch.from_numpy(data.matrix(data.train).toarray())
    before = full_loss(model, data, teacher, loss)
    opt = torch.optim.Adam([model.codebooks], lr=1e-2)
    for _ in range(30):
        value = ranking_loss(model.scores(torch.arange(data.n_users)) / 0.1, positives, teacher / 0.1, loss)
        opt.zero_grad()
        value.backward()
        opt.step()
    assert full_loss(model, data, teacher, loss) < before - 1e-3


def test_distill_loss_is_zero_for_the_teacher_itself() -> None:
    t = torch.randn(3, 7)
    assert float(ranking_loss(t, torch.ones(3, 7), t, "distill")) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("scheme", ["pq4", "opq4", "rq4"])
def test_train_codes_keeps_codes_and_scores_as_served(tiny, scheme: str) -> None:
    data, users, items = tiny
    init = Quantizer(scheme).encode_items(items)
    settings = LearnSettings(loss="softmax", lr=1e-2, user_lr=1e-3, max_epochs=6, patience=6, batch_size=16)
    res = train_codes(scheme, users, items, data, "cosine", 0.1, settings, init=init)
    m = PQ_SUBSPACES[scheme]
    # the training epochs went down in loss (the kept state is the best-validation one, possibly epoch 0)
    losses = [h["loss"] for h in res.history[1:]]
    assert len(losses) == res.epochs == 6 and losses[-1] < losses[0]
    assert 0 <= res.best_epoch <= res.epochs
    assert res.best_val == pytest.approx(max(h["val/ndcg@10"] for h in res.history))
    # codes: fixed (no re-assignment), same shape and bytes per item; codebooks same shape
    stored = res.tables.stored()
    assert stored["item_emb"].dtype == torch.uint8 and stored["item_emb"].shape == (data.n_items, m)
    assert torch.equal(stored["item_emb"], init.data)
    assert stored["pq_codebooks"].shape == init.codebooks.shape
    assert ("pq_rotation" in stored) == scheme.startswith("opq")
    assert stored["user_emb"].dtype == torch.float32 and stored["user_emb"].shape == (data.n_users, DIM)
    # the stored tables read back through the quantiser and score as decode-then-dot
    qz = Quantizer(scheme)
    u, i = qz.split(stored, dim=DIM)
    decoded = pq_decode(i.data, i.codebooks, i.rotation, additive=scheme.startswith("rq"))
    expected = u.data @ decoded.T
    torch.testing.assert_close(qz.scores(u, i), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        qz.scores(u.rows(torch.arange(3)), i), expected[:3], rtol=1e-4, atol=1e-5
    )  # LUT
    with torch.no_grad():
        torch.testing.assert_close(
            res.tables.scores(torch.arange(data.n_users)), expected, rtol=1e-4, atol=1e-5
        )
    # the serving paths (faiss IndexPQ / IndexResidualQuantizer over the stored codebooks, decoded cache) agree
    for method in ("decoded", "faiss"):
        vals, idx = Searcher(qz, i, method).search(u, 10)
        torch.testing.assert_close(vals, torch.topk(expected, 10).values, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(expected.gather(1, idx), vals, rtol=1e-4, atol=1e-4)
    # the kept state is the one validation picked
    assert evaluate_codes(scheme, u, i, data, "val", ks=(10,))["ndcg@10"] == pytest.approx(res.best_val)


def test_post_hoc_state_is_epoch_zero_and_matches_evaluate_quantized(tiny) -> None:
    from recsys_gnn.compress.evaluate import evaluate_quantized

    data, users, items = tiny
    init = Quantizer("pq4").encode_items(items)
    res = train_codes(
        "pq4", users, items, data, settings=LearnSettings(lr=0.0, max_epochs=2, patience=1), init=init
    )
    assert res.best_epoch == 0  # lr 0: nothing changes, so nothing beats the post-hoc codes
    u, i = res.tables.encoded()
    got = evaluate_codes("pq4", u, i, data, "test", ks=(10,))["ndcg@10"]
    assert got == pytest.approx(
        evaluate_quantized(users, items, data, schemes=["pq4"], ks=(10,))["test_pq4/ndcg@10"]
    )


def test_reassignment_keeps_code_shape(tiny) -> None:
    data, users, items = tiny
    settings = LearnSettings(loss="softmax", lr=3e-2, max_epochs=3, patience=3, reassign_every=1)
    res = train_codes("pq4", users, items, data, settings=settings)
    assert res.tables.codes.shape == (data.n_items, 4) and res.tables.codes.dtype == torch.uint8


def test_bad_scheme_and_settings_give_one_line_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown scheme 'pq3' for learned codes; expected one of pq4"
    ) as err:
        check_schemes(["pq8", "pq3"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expected one of"):
        check_schemes(["int8"])  # no codebooks to learn
    with pytest.raises(ConfigError, match="unknown loss 'bpr'"):
        LearnSettings(loss="bpr")
    with pytest.raises(ConfigError, match="patience must be >= 1"):
        LearnSettings(patience=0)


def test_missing_run_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        check_run(tmp_path / "nope")
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(DataError, match=r"missing tables/embeddings\.safetensors") as err:
        check_run(tmp_path)
    assert "\n" not in str(err.value)


def test_cli_bad_input_exits_1_with_one_line(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert learned.main(["--run", str(tmp_path), "--schemes", "pq8,zz9"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unknown scheme 'zz9'" in errors[0] and "\n" not in errors[0]
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert learned.main(["--run", str(tmp_path), "--schemes", "pq8"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "missing config.yaml" in errors[0]


def learned_cli_run(tmp_path: Path, monkeypatch, tiny, *extra: str) -> tuple[Path, Path]:
    """A fake finished run (saved tables of ``tiny``) and ``python -m recsys_gnn.compress.learned`` on it with
    pq4 for 2 epochs; returns ``(run folder, output folder)``."""
    import recsys_gnn.pipeline
    from recsys_gnn.tables import save_tables

    data, users, items = tiny
    run = tmp_path / "run"
    save_tables(run / "tables", users, items, data)
    (run / "config.yaml").write_text(
        "seed: 1\nmodule: {temperature: 0.1}\nmodel: {similarity: cosine}\ndataset: {name: tiny}\n"
    )
    (run / "metrics.json").write_text(json.dumps({"test/ndcg@10": 0.5}))
    monkeypatch.setattr(recsys_gnn.pipeline, "load_data", lambda cfg: data)
    out = tmp_path / "out"
    argv = ["--run", str(run), "--schemes", "pq4", "--out", str(out), "--max-epochs", "2", *extra]
    try:
        assert learned.main(argv) == 0
    finally:  # main adds a file handler to the root logger
        root = logging.getLogger()
        for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(h)
            h.close()
    return run, out


def test_cli_end_to_end_on_a_fake_run(tmp_path: Path, monkeypatch, tiny) -> None:
    data = tiny[0]
    _, out = learned_cli_run(tmp_path, monkeypatch, tiny, "--seed", "3")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seed"] == 3 and settings["temperature"] == 0.1 and settings["similarity"] == "cosine"
    strict = {"parse_constant": lambda c: pytest.fail(f"metrics.json holds {c}, not valid JSON")}
    metrics = json.loads((out / "metrics.json").read_text(), **strict)
    row = metrics["schemes"]["pq4"]
    assert row["bytes_per_item"] == 4 and {"test/ndcg@10", "val/ndcg@10"} <= set(row["learned"])
    assert len(row["history"]) == row["epochs"] + 1
    stored = load_file(str(out / "codes_pq4.safetensors"))
    u, i = Quantizer("pq4").split(stored, dim=DIM)
    assert i.data.shape == (data.n_items, 4)
    got = evaluate_codes("pq4", u, i, data, "test", ks=(10, 20))["ndcg@10"]
    assert got == pytest.approx(row["learned"]["test/ndcg@10"])
    assert (out / "learned.log").is_file()


def test_export_serves_the_learned_codes(tmp_path: Path, monkeypatch, tiny) -> None:
    """``python -m recsys_gnn.export RUN --codes codes_pq4.safetensors`` writes the learned tables as they are
    (users fine-tuned with them), and the artifact ranks exactly as the learned codes score."""
    from recsys_gnn import export
    from recsys_gnn.serve.artifact import Artifact

    run, out = learned_cli_run(tmp_path, monkeypatch, tiny)
    (run / "protocol.json").write_text(json.dumps({"dataset": "tiny"}))  # export reads a finished run's files
    codes = out / "codes_pq4.safetensors"
    art_dir = tmp_path / "artifact"
    args = [str(run), "--codes", str(codes), "--out", str(art_dir), "--repeats", "3"]
    assert export.main(args) == 0
    art = Artifact.load(art_dir)
    assert art.quantization == "pq4"
    stored = load_file(str(codes))
    u, i = Quantizer("pq4").split(stored, dim=DIM)
    want = Quantizer("pq4").scores(u.rows(torch.arange(5)), i)  # (5, I) the learned codes' scores
    got = art.searcher.search(art.users.rows(torch.arange(5)), 10)
    top = want.topk(10, dim=1).indices
    got_idx = got[1] if isinstance(got, tuple) else got
    assert torch.equal(torch.sort(torch.as_tensor(got_idx), dim=1).values, torch.sort(top, dim=1).values)
    # a scheme mismatch and a wrong-shaped file are refused with one line
    assert (
        export.main([str(run), "--codes", str(codes), "--quantize", "pq8", "--out", str(tmp_path / "x")]) == 1
    )
    assert (
        export.main([str(run), "--codes", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "y")])
        == 1
    )
