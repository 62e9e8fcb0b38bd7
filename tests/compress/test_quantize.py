"""Post-training quantisation: round-trip error bounds, exact int8 scores, binary codes and Hamming scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recsys_gnn.compress.quantize import (
    PQ_SUBSPACES,
    QUANTIZATIONS,
    Quantizer,
    binarize,
    dequantize_int8,
    hamming_distance,
    hamming_scores,
    int8_scores,
    quantize_int8,
    to_fp16,
    unpack_bits,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_int8_round_trip_within_half_a_step() -> None:
    x = randn(50, 33) * torch.logspace(-3, 3, 50)[:, None]  # rows of very different magnitudes
    q, scale = quantize_int8(x)
    assert (
        q.dtype == torch.int8 and q.shape == x.shape and scale.shape == (50,) and scale.dtype == torch.float32
    )
    assert int(q.abs().max()) == 127
    torch.testing.assert_close(scale, x.abs().amax(1) / 127)
    err = (dequantize_int8(q, scale) - x).abs()
    assert bool((err <= scale[:, None] / 2 * (1 + 1e-5)).all())
    # each row's largest element is reproduced (up to float rounding of the scale)
    torch.testing.assert_close(dequantize_int8(q, scale).abs().amax(1), x.abs().amax(1))


def test_int8_zero_rows_are_safe() -> None:
    x = randn(4, 6)
    x[2] = 0
    q, scale = quantize_int8(x)
    assert scale[2] == 0 and bool((q[2] == 0).all())
    back = dequantize_int8(q, scale)
    assert bool(torch.isfinite(back).all()) and bool((back[2] == 0).all())


def test_int8_scores_equal_dequantised_product() -> None:
    qu, su = quantize_int8(randn(7, 64, seed=1))
    qi, si = quantize_int8(randn(40, 64, seed=2) * 5)
    got = int8_scores(qu, su, qi, si)
    ref = dequantize_int8(qu, su).double() @ dequantize_int8(qi, si).double().T
    assert got.shape == (7, 40) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6)
    # the integer part is exact: compare with an int64 product
    exact = qu.long() @ qi.long().T
    torch.testing.assert_close(got / (su[:, None] * si[None, :]), exact.float(), rtol=1e-6, atol=0.0)


def test_int8_scores_exact_beyond_float32_integers() -> None:
    d = 1200  # 127^2 * 1200 > 2^24: the int32 path
    q = torch.full((2, d), 127, dtype=torch.int8)
    q[1] = -127
    got = int8_scores(q, torch.ones(2), q, torch.ones(2))
    assert got[0, 0].item() == 127 * 127 * d and got[0, 1].item() == -(127 * 127 * d)


def test_int8_shape_errors() -> None:
    q, s = quantize_int8(randn(3, 4))
    with pytest.raises(ValueError, match="scales must have shape"):
        int8_scores(q, s[:2], q, s)
    with pytest.raises(ValueError, match="4 dims but item codes 5"):
        int8_scores(q, s, *quantize_int8(randn(3, 5)))
    with pytest.raises(ValueError, match="non-finite value .* row 1"):
        quantize_int8(torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="2-D"):
        quantize_int8(torch.ones(3))


def test_fp16_round_trip_and_range() -> None:
    x = randn(20, 16)
    h = to_fp16(x)
    assert h.dtype == torch.float16
    assert bool(((h.float() - x).abs() <= x.abs() * 2**-11 + 2**-24).all())
    with pytest.raises(ValueError, match="magnitude 1e\\+05"):
        to_fp16(torch.tensor([[1e5, 0.0]]))


def test_binarize_hand_case() -> None:
    x = torch.tensor(
        [
            [1.0, -1.0, 2.0, 0.0, -3.0, 0.5, 0.1, -0.1, 7.0, -7.0],  # bits 1010 0110 | 10(000000)
            [-1.0] * 10,
        ]
    )
    codes = binarize(x)
    assert codes.dtype == torch.uint8 and codes.shape == (2, math.ceil(10 / 8))
    assert codes.tolist() == [[0b10100110, 0b10000000], [0, 0]]
    np.testing.assert_array_equal(codes.numpy(), np.packbits((x > 0).numpy(), axis=1))
    assert unpack_bits(codes, 10).tolist() == (x > 0).to(torch.uint8).tolist()


def test_hamming_hand_cases() -> None:
    users = torch.tensor([[0b11110000], [0b00000000]], dtype=torch.uint8)
    items = torch.tensor([[0b11110000], [0b11110001], [0b00001111], [0b11111111]], dtype=torch.uint8)
    assert hamming_distance(users, items).tolist() == [[0, 1, 8, 4], [4, 5, 4, 8]]
    scores = hamming_scores(users, items)
    assert scores.tolist() == [[8.0, 6.0, -8.0, 0.0], [0.0, -2.0, 0.0, -8.0]]
    # ranking = fewer differing bits first
    assert torch.argsort(scores[0], descending=True).tolist() == [0, 1, 3, 2]


@pytest.mark.parametrize("dim", [3, 12, 64, 100])
@pytest.mark.parametrize("n_users", [1, 5, 20])  # both the XOR/popcount and the matrix-product paths
def test_hamming_matches_numpy_and_sign_dot(dim: int, n_users: int) -> None:
    u, i = randn(n_users, dim, seed=dim), randn(37, dim, seed=dim + 1)
    ub, ib = (u > 0).numpy(), (i > 0).numpy()
    ref = (ub[:, None, :] != ib[None, :, :]).sum(-1)
    got = hamming_distance(binarize(u), binarize(i))
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(got.numpy(), ref)
    signs_u, signs_i = torch.where(u > 0, 1.0, -1.0), torch.where(i > 0, 1.0, -1.0)
    torch.testing.assert_close(hamming_scores(binarize(u), binarize(i), dim=dim), signs_u @ signs_i.T)


def test_hamming_width_mismatch() -> None:
    with pytest.raises(ValueError, match="1 bytes per row but item codes 2"):
        hamming_distance(binarize(randn(2, 8)), binarize(randn(2, 16)))
    with pytest.raises(ValueError, match="uint8"):
        hamming_distance(torch.zeros(2, 1, dtype=torch.int8), torch.zeros(2, 1, dtype=torch.int8))


@pytest.mark.parametrize("name", [q for q in QUANTIZATIONS if q not in PQ_SUBSPACES])  # PQ: test_pq.py
def test_quantizer_compress_split_and_scores(name: str) -> None:
    tables = {"user_emb": randn(6, 20, seed=3), "item_emb": randn(15, 20, seed=4)}
    qz = Quantizer(name)
    stored = qz.compress(tables)
    expect_keys = {"user_emb", "item_emb"} | ({"user_scale", "item_scale"} if name == "int8" else set())
    assert set(stored) == expect_keys
    users, items = qz.split(stored, dim=20)
    decoded_u, decoded_i = qz.decode(users), qz.decode(items)
    assert decoded_u.shape == (6, 20) and decoded_i.dtype == torch.float32
    # scores are dot products of the decoded vectors, whatever the scheme
    torch.testing.assert_close(qz.scores(users, items), decoded_u @ decoded_i.T, rtol=1e-5, atol=1e-5)
    ref = tables["user_emb"] @ tables["item_emb"].T
    if name in ("fp32", "fp16", "int8"):
        tol = {"fp32": 1e-6, "fp16": 1e-2, "int8": 5e-2}[name]
        assert float((qz.scores(users, items) - ref).abs().max()) < tol * float(ref.abs().max())
    else:
        assert bool((decoded_i.abs() == 1).all())
    sub = users.rows(torch.tensor([4, 1]))
    torch.testing.assert_close(qz.scores(sub, items), qz.scores(users, items)[[4, 1]])


def test_quantizer_errors() -> None:
    with pytest.raises(ValueError, match="unknown quantisation 'int4'"):
        Quantizer("int4")
    qz = Quantizer("int8")
    stored = qz.compress({"user_emb": randn(2, 4), "item_emb": randn(3, 4)})
    del stored["item_scale"]
    with pytest.raises(ValueError, match="item_scale"):
        qz.split(stored, dim=4)
    with pytest.raises(ValueError, match="should be torch.uint8 \\(N, 1\\)"):
        Quantizer("binary").split({"user_emb": randn(2, 4), "item_emb": randn(3, 4)}, dim=4)
    with pytest.raises(ValueError, match="no item_emb"):
        Quantizer("fp16").compress({"user_emb": randn(2, 4)})
    with pytest.raises(ValueError, match="differ in width"):
        Quantizer("fp32").compress({"user_emb": randn(2, 4), "item_emb": randn(3, 5)})
