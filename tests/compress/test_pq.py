"""Product quantisation: codes and bytes, asymmetric scores against numpy, ranking through the evaluator, and the
fast scoring paths (``Searcher``) against the reference ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_gnn.compress.evaluate import evaluate_quantized
from recsys_gnn.compress.quantize import (
    PQ_SUBSPACES,
    Quantizer,
    pq_decode,
    pq_encode,
    pq_lookup_tables,
    pq_scores,
    train_pq,
)
from recsys_gnn.compress.report import report_row
from recsys_gnn.compress.search import Searcher, resolve_method
from recsys_gnn.data.interactions import InteractionData

pytest.importorskip("faiss", reason="product quantisation needs faiss-cpu (the [faiss] extra)")


def unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1
    )


@pytest.mark.parametrize("name", ["pq4", "pq8", "pq16", "opq8", "rq8"])
def test_codes_shapes_and_bytes(name: str) -> None:
    m = PQ_SUBSPACES[name]
    qz = Quantizer(name)
    stored = qz.compress({"user_emb": unit(7, 64), "item_emb": unit(600, 64, seed=1)})
    assert stored["user_emb"].dtype == torch.float32 and stored["user_emb"].shape == (
        7,
        64,
    )  # users stay exact
    assert stored["item_emb"].dtype == torch.uint8 and stored["item_emb"].shape == (600, m)
    width = 64 if name.startswith("rq") else 64 // m  # residual codewords are full width
    assert stored["pq_codebooks"].shape == (m, 256, width)
    assert ("pq_rotation" in stored) == name.startswith("opq")
    row = report_row("m", serve_tensors=stored, n_items=600, train_params=0, lm_at_serving=False)
    assert (
        row["bytes_per_item"] == m
    )  # one byte per sub-space; the shared codebooks count in serve bytes only
    rotation = 64 * 64 * 4 if name == "opq8" else 0
    assert row["serve_bytes"] == 7 * 64 * 4 + 600 * m + m * 256 * width * 4 + rotation
    users, items = qz.split(stored, dim=64)
    decoded = qz.decode(items)
    assert decoded.shape == (600, 64)
    # decoding gives the centroids, which are closer to the rows than chance
    assert float((decoded - unit(600, 64, seed=1)).norm(dim=1).mean()) < 0.9
    torch.testing.assert_close(qz.scores(users, items), users.data @ decoded.T, rtol=1e-4, atol=1e-5)


def test_asymmetric_scores_match_numpy_lookup_tables() -> None:
    rng = np.random.default_rng(0)
    m, dsub, n_items = 3, 2, 11
    codebooks = rng.normal(size=(m, 256, dsub)).astype(np.float32)
    codes = rng.integers(0, 256, size=(n_items, m)).astype(np.uint8)
    users = rng.normal(size=(4, m * dsub)).astype(np.float32)
    ref = np.zeros((4, n_items))
    for b in range(4):
        for i in range(n_items):
            ref[b, i] = sum(users[b, j * dsub : (j + 1) * dsub] @ codebooks[j, codes[i, j]] for j in range(m))
    got = pq_scores(torch.from_numpy(users), torch.from_numpy(codes), torch.from_numpy(codebooks))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
    lut = pq_lookup_tables(torch.from_numpy(users), torch.from_numpy(codebooks))
    assert lut.shape == (4, m, 256)
    np.testing.assert_allclose(lut[1, 2, 7].item(), users[1, 4:6] @ codebooks[2, 7], rtol=1e-6)
    dec = pq_decode(torch.from_numpy(codes), torch.from_numpy(codebooks)).numpy()
    np.testing.assert_allclose(dec[5], codebooks[np.arange(m), codes[5]].reshape(-1))
    # the encoder picks the nearest centroid in each sub-space
    again = pq_encode(torch.from_numpy(dec), torch.from_numpy(codebooks))
    np.testing.assert_array_equal(again.numpy(), codes)


def test_opq_rotation_is_orthogonal_and_scores_are_rotation_invariant() -> None:
    x, u = unit(500, 16, seed=2), unit(3, 16, seed=3)
    codebooks, rotation = train_pq(x, 4, rotate=True)
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(16), atol=1e-4, rtol=0)
    codes = pq_encode(x, codebooks, rotation)
    decoded = pq_decode(codes, codebooks, rotation)  # back in the original space
    torch.testing.assert_close(pq_scores(u, codes, codebooks, rotation), u @ decoded.T, rtol=1e-4, atol=1e-5)


def test_small_tables_are_coded_losslessly_and_bad_dims_refused() -> None:
    x = unit(40, 8)
    qz = Quantizer("pq4")
    torch.testing.assert_close(qz.decode(qz.encode_items(x)), x)  # fewer rows than centroids: every row kept
    with pytest.raises(ValueError, match="divisible by M; got D=12"):
        Quantizer("pq8").encode_items(unit(300, 12))
    stored = qz.compress({"user_emb": unit(2, 8), "item_emb": x})
    del stored["pq_codebooks"]
    with pytest.raises(ValueError, match="pq_codebooks"):
        qz.split(stored, dim=8)


def tiny_data(n_users: int = 40, n_items: int = 400, seed: int = 0) -> InteractionData:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        rows += [[u, int(i)] for i in rng.choice(n_items, size=8, replace=False)]
    pairs = np.asarray(rows, dtype=np.int64).reshape(n_users, 8, 2)
    train, val, test = pairs[:, :6].reshape(-1, 2), pairs[:, 6].reshape(-1, 2), pairs[:, 7].reshape(-1, 2)
    return InteractionData(
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


def test_pq_ranks_through_the_full_ranking_evaluator() -> None:
    data = tiny_data()
    users, items = unit(40, 16, seed=4), unit(400, 16, seed=5)
    # make the test item of every user the best by far, so every scheme that keeps the geometry finds it
    items[data.test[:, 1]] = users[data.test[:, 0]]
    schemes = ("fp32", "pq4", "pq8", "opq8", "rq4")
    out = evaluate_quantized(users, items, data, schemes=schemes, ks=(10,))
    assert {f"test_{s}/{m}@10" for s in schemes for m in ("ndcg", "recall")} <= set(out)
    assert out["test_fp32/ndcg@10"] == pytest.approx(1.0)
    for s in schemes[1:]:
        assert 0.5 < out[f"test_{s}/ndcg@10"] <= 1.0
    assert out["test_pq8/recall@10"] >= out["test_pq4/recall@10"] - 0.1  # more bytes, not worse (up to noise)


@pytest.mark.parametrize("name", ["fp32", "fp16", "int8", "binary", "pq4", "pq8", "opq8", "rq4", "rq8"])
def test_served_scoring_paths_rank_like_the_reference(name: str) -> None:
    qz = Quantizer(name)
    users, items = qz.encode(unit(9, 64, seed=6)), qz.encode_items(unit(1000, 64, seed=7))
    ref = qz.scores(users, items)
    ref_vals, ref_idx = torch.topk(ref, 10)
    methods = ["reference", "decoded"] + (["faiss"] if name in PQ_SUBSPACES or name == "binary" else [])
    for method in methods:
        searcher = Searcher(qz, items, method)
        vals, idx = searcher.search(users, 10)
        torch.testing.assert_close(vals, ref_vals, rtol=1e-5, atol=1e-5)
        if name != "binary":  # Hamming scores tie; the tied items may come back in another order
            assert torch.equal(idx, ref_idx), method
        torch.testing.assert_close(searcher.scores(users), ref, rtol=1e-5, atol=1e-5)
    expected = {
        "binary": "reference",
        "fp32": "decoded",
        "fp16": "decoded",
        "int8": "decoded",
    }
    assert resolve_method(name) == expected.get(name, "faiss")
    with pytest.raises(ValueError, match="unknown scoring method"):
        Searcher(qz, items, "gpu")


def test_int8_fast_path_equals_the_exact_integer_ranking() -> None:
    qz = Quantizer("int8")
    users, items = qz.encode(unit(50, 64, seed=8)), qz.encode_items(unit(5000, 64, seed=9))
    exact = (users.data.long() @ items.data.long().T).double() * users.scale[:, None].double()
    exact = exact * items.scale[None, :].double()
    fast_vals, fast_idx = Searcher(qz, items).search(users, 10)
    ref_vals, ref_idx = torch.topk(exact, 10)
    assert torch.equal(fast_idx, ref_idx)
    torch.testing.assert_close(fast_vals.double(), ref_vals, rtol=1e-5, atol=1e-6)


def test_residual_codes_sum_full_width_codewords() -> None:
    rng = np.random.default_rng(1)
    m, dim = 3, 5
    codebooks = rng.normal(size=(m, 256, dim)).astype(np.float32)
    codes = rng.integers(0, 256, size=(9, m)).astype(np.uint8)
    users = rng.normal(size=(2, dim)).astype(np.float32)
    dec = sum(codebooks[j, codes[:, j]] for j in range(m))  # (9, D): the item is the sum of its codewords
    cb, cd = torch.from_numpy(codebooks), torch.from_numpy(codes)
    np.testing.assert_allclose(pq_decode(cd, cb, additive=True).numpy(), dec, rtol=1e-5, atol=1e-6)
    got = pq_scores(torch.from_numpy(users), cd, cb, additive=True)
    np.testing.assert_allclose(got.numpy(), users @ dec.T, rtol=1e-5, atol=1e-5)
    x = unit(700, 16, seed=11)
    qz = Quantizer("rq4")
    items = qz.encode_items(x)
    assert items.additive and items.data.shape == (700, 4) and items.codebooks.shape == (4, 256, 16)
    # each extra codebook codes what the previous ones left: the error is below plain 4-byte PQ's
    pq_err = (Quantizer("pq4").decode(Quantizer("pq4").encode_items(x)) - x).norm(dim=1).mean()
    assert float((qz.decode(items) - x).norm(dim=1).mean()) < float(pq_err)
