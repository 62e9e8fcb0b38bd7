"""Post-training quantisation of the serving tables: fp16, per-row int8 and 1-bit (sign) codes, and their scores.

Every scheme scores a user and an item by the dot product of their *decoded* vectors:

- ``fp32`` / ``fp16``: the stored floats (fp16 is upcast to float32 for the product).
- ``int8``: ``q_u . q_i`` computed exactly in int32, times ``scale_u * scale_i``.
- ``binary``: the ``+1/-1`` sign vectors, whose dot product is ``D - 2 * hamming(code_u, code_i)``, so the
  ranking is "fewer differing bits first".
- ``pq4`` / ``pq8`` / ``pq16`` (product quantisation, Jegou et al., TPAMI 2011): each item is M one-byte codes,
  one per ``D / M``-dimensional sub-space, into M codebooks of 256 centroids learned by k-means on the item
  table (faiss); the user stays exact (fp32) and scores by *asymmetric distance*: ``u . decode(code_i)``, which
  serving computes as a sum of M look-ups in a ``(M, 256)`` table of ``u``'s sub-vector products.
- ``opq4`` / ``opq8`` / ``opq16``: the same after a learned orthogonal rotation R (faiss ``OPQMatrix``, Ge et al.,
  CVPR 2013) that balances the variance between sub-spaces; ``u . R^T c = (R u) . c``, so queries are rotated.
- ``rq4`` / ``rq8`` / ``rq16`` (residual quantisation, an additive code; faiss ``ResidualQuantizer``, beam search):
  M one-byte codes into M codebooks of 256 *full-dimensional* codewords, the item is their sum; each codebook
  codes the residual the previous ones left. Same bytes per item and the same asymmetric look-up-table scoring
  (``u . sum_m c_m = sum_m u . c_m``), codebooks ``(M, 256, D)`` instead of ``(M, 256, D / M)``.

Only the item side of PQ is coded: ``encode`` (queries, users) keeps floats, ``encode_items`` learns the codebooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

PQ_SUBSPACES = {"pq4": 4, "pq8": 8, "pq16": 16, "opq4": 4, "opq8": 8, "opq16": 16}  # M = bytes per item
PQ_SUBSPACES.update({"rq4": 4, "rq8": 8, "rq16": 16})  # additive (residual) codes: M full-width codebooks
QUANTIZATIONS = ("fp32", "fp16", "int8", "binary", *PQ_SUBSPACES)
PQ_CENTROIDS = 256  # 8-bit codes
PQ_SEED = 1234
OPQ_ITERATIONS = 10  # faiss' default 50 costs ~10x a PQ training; see experiments/compression/pq.md
RQ_BEAM = 8  # beam width of residual-quantisation encoding (faiss' default 5)
INT8_MAX = 127
_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)  # most significant bit first
_ITEM_CHUNK = 16384  # item rows converted at once when scoring (bounds temporary memory)
_XOR_MAX_USERS = 8  # up to this many query rows, Hamming distances use XOR + popcount, else a BLAS product
_EXACT_F32 = 2**24  # integers up to this magnitude are exact in float32


def _check_matrix(x: Tensor, what: str, float_only: bool = True) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a 2-D tensor (N, D); got {shape}")
    if float_only:
        if not x.is_floating_point():
            raise ValueError(f"{what} must be a floating-point tensor; got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).any(1).nonzero()[0, 0])
            raise ValueError(f"{what} has a non-finite value (NaN or inf) in row {bad}")


def quantize_int8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8 quantisation.

    Args:
        x: ``(N, D)`` float.
    Returns:
        ``q`` ``(N, D)`` int8 in ``[-127, 127]`` and ``scale`` ``(N,)`` float32 with ``x ~= q * scale[:, None]``;
        ``scale = max|row| / 127`` (0 for an all-zero row, which decodes back to zeros). The error of each element
        is at most ``scale / 2``.
    """
    _check_matrix(x, "int8 input")
    x = x.detach().to(torch.float32)
    scale = x.abs().amax(dim=1) / INT8_MAX  # (N,)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / safe[:, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`quantize_int8`: ``(N, D)`` int8 and ``(N,)`` scales -> ``(N, D)`` float32."""
    _check_matrix(q, "int8 codes", float_only=False)
    if q.dtype != torch.int8:
        raise ValueError(f"int8 codes must have dtype int8; got {q.dtype}")
    if scale.shape != (q.shape[0],):
        raise ValueError(
            f"scale must have shape ({q.shape[0]},) for {q.shape[0]} rows; got {tuple(scale.shape)}"
        )
    return q.to(torch.float32) * scale.to(torch.float32)[:, None]


def to_fp16(x: Tensor) -> Tensor:
    """``(N, D)`` float -> ``(N, D)`` float16; refuses values beyond the fp16 range (they would become inf)."""
    _check_matrix(x, "fp16 input")
    limit = torch.finfo(torch.float16).max
    peak = float(x.abs().max()) if x.numel() else 0.0
    if peak > limit:
        raise ValueError(
            f"fp16 cannot hold values of magnitude {peak:.4g} (max {limit:.4g}); use int8 or fp32"
        )
    return x.detach().to(torch.float16)


def binarize(x: Tensor) -> Tensor:
    """1-bit codes: bit = ``x > 0``, packed 8 per byte, most significant bit first (as ``numpy.packbits``).

    Args:
        x: ``(N, D)`` float.
    Returns:
        ``(N, ceil(D / 8))`` uint8; the padding bits of the last byte are 0 in every row.
    """
    _check_matrix(x, "binary input")
    n, d = x.shape
    width = math.ceil(d / 8)
    bits = torch.zeros(n, width * 8, dtype=torch.uint8)
    bits[:, :d] = (x.detach() > 0).to(torch.uint8)
    return (bits.view(n, width, 8) * _BIT_WEIGHTS).sum(dim=2, dtype=torch.uint8)


def unpack_bits(codes: Tensor, dim: int) -> Tensor:
    """``(N, W)`` uint8 codes -> ``(N, dim)`` uint8 bits (0/1), the inverse of :func:`binarize`'s packing."""
    _check_codes(codes)
    if not 0 < dim <= codes.shape[1] * 8:
        raise ValueError(
            f"dim must be in [1, {codes.shape[1] * 8}] for codes of {codes.shape[1]} bytes; got {dim}"
        )
    bits = (codes[:, :, None] & _BIT_WEIGHTS) != 0  # (N, W, 8)
    return bits.reshape(codes.shape[0], -1)[:, :dim].to(torch.uint8)


def _check_codes(codes: Tensor) -> None:
    _check_matrix(codes, "binary codes", float_only=False)
    if codes.dtype != torch.uint8:
        raise ValueError(f"binary codes must have dtype uint8; got {codes.dtype}")


def _as_words(codes: Tensor) -> Tensor:
    """``(N, W)`` uint8 codes -> ``(N, ceil(W / 8))`` int64 words (zero-padded; a view when ``W % 8 == 0``)."""
    pad = (-codes.shape[1]) % 8
    if pad:
        codes = torch.cat([codes, codes.new_zeros(codes.shape[0], pad)], dim=1)
    return codes.contiguous().view(torch.int64)


def _popcount64(x: Tensor) -> Tensor:
    """Set bits of each int64 (SWAR; every shifted value is masked or non-negative, so sign bits never leak)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


def hamming_distance(user_codes: Tensor, item_codes: Tensor) -> Tensor:
    """Number of differing bits between every user code and every item code.

    A few users: popcount of the XOR, 64 bits at a time. Many users: ``|u| + |i| - 2 u.i`` on unpacked bits,
    a BLAS product of 0/1 values that is exact (integers below 2^24). Items are processed in chunks, so
    temporary memory stays bounded whatever the catalogue size.

    Args:
        user_codes: ``(B, W)`` uint8.
        item_codes: ``(I, W)`` uint8.
    Returns:
        ``(B, I)`` int32.
    """
    _check_codes(user_codes)
    _check_codes(item_codes)
    if user_codes.shape[1] != item_codes.shape[1]:
        raise ValueError(
            f"user codes have {user_codes.shape[1]} bytes per row but item codes {item_codes.shape[1]}"
        )
    n_users, n_items = user_codes.shape[0], item_codes.shape[0]
    out = torch.empty(n_users, n_items, dtype=torch.int32)
    if n_users <= _XOR_MAX_USERS:
        u = _as_words(user_codes)[:, None, :]  # (B, 1, words)
        for start in range(0, n_items, _ITEM_CHUNK):
            it = _as_words(item_codes[start : start + _ITEM_CHUNK])[None]  # (1, chunk, words)
            out[:, start : start + it.shape[1]] = _popcount64(u ^ it).sum(dim=2).to(torch.int32)
        return out
    n_bits = user_codes.shape[1] * 8
    ub = unpack_bits(user_codes, n_bits).to(torch.float32)  # (B, n_bits)
    u_ones = ub.sum(1)
    for start in range(0, n_items, _ITEM_CHUNK):
        it = unpack_bits(item_codes[start : start + _ITEM_CHUNK], n_bits).to(torch.float32)
        common = ub @ it.T
        out[:, start : start + len(it)] = (u_ones[:, None] + it.sum(1)[None, :] - 2 * common).to(torch.int32)
    return out


def hamming_scores(user_codes: Tensor, item_codes: Tensor, dim: int | None = None) -> Tensor:
    """Scores of binary codes: ``dim - 2 * hamming`` (higher = fewer differing bits).

    With ``dim`` = the number of real (unpadded) bits this is the dot product of the ``+1/-1`` sign vectors;
    by default ``dim = 8 * W``, which ranks identically.

    Args:
        user_codes: ``(B, W)`` uint8.
        item_codes: ``(I, W)`` uint8.
        dim: number of coded dimensions D.
    Returns:
        ``(B, I)`` float32.
    """
    dim = user_codes.shape[1] * 8 if dim is None else dim
    return (dim - 2 * hamming_distance(user_codes, item_codes)).to(torch.float32)


def int8_scores(q_user: Tensor, s_user: Tensor, q_item: Tensor, s_item: Tensor) -> Tensor:
    """Dot products of int8-quantised rows: exact int32 products ``q_u . q_i``, then ``* s_u * s_i``.

    Args:
        q_user: ``(B, D)`` int8; s_user: ``(B,)`` float32.
        q_item: ``(I, D)`` int8; s_item: ``(I,)`` float32.
    Returns:
        ``(B, I)`` float32, equal to ``dequantize(q_user) @ dequantize(q_item).T`` up to float rounding.
    """
    for q, s, who in ((q_user, s_user, "user"), (q_item, s_item, "item")):
        _check_matrix(q, f"{who} int8 codes", float_only=False)
        if q.dtype != torch.int8:
            raise ValueError(f"{who} int8 codes must have dtype int8; got {q.dtype}")
        if s.shape != (q.shape[0],):
            raise ValueError(f"{who} scales must have shape ({q.shape[0]},); got {tuple(s.shape)}")
    if q_user.shape[1] != q_item.shape[1]:
        raise ValueError(f"user codes have {q_user.shape[1]} dims but item codes {q_item.shape[1]}")
    dots = torch.empty(q_user.shape[0], q_item.shape[0], dtype=torch.int32)
    # |q_u . q_i| <= 127^2 D: below 2^24 every partial sum of the float32 product is an exact integer, so BLAS
    # gives the exact integer dot product; beyond that, integer matmul.
    exact_f32 = INT8_MAX * INT8_MAX * q_user.shape[1] < _EXACT_F32
    work = torch.float32 if exact_f32 else torch.int32
    u = q_user.to(work)
    for start in range(0, q_item.shape[0], _ITEM_CHUNK):
        chunk = q_item[start : start + _ITEM_CHUNK].to(work)
        dots[:, start : start + len(chunk)] = (u @ chunk.T).to(torch.int32)
    return dots.to(torch.float32) * s_user.to(torch.float32)[:, None] * s_item.to(torch.float32)[None, :]


def _faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "product quantisation needs faiss: pip install faiss-cpu (the [faiss] extra)"
        ) from err
    faiss.omp_set_num_threads(torch.get_num_threads())  # follow torch's thread setting (timings at 1 thread)
    return faiss


def _pq_check(dim: int, m: int) -> int:
    if m < 1 or dim % m:
        raise ValueError(
            f"product quantisation with M={m} sub-spaces needs a dimension divisible by M; got D={dim} "
            f"(for D={dim} use M in {[k for k in (1, 2, 4, 8, 16, 32, 64) if dim % k == 0]})"
        )
    return dim // m


def train_pq(x: Tensor, m: int, rotate: bool = False, seed: int = PQ_SEED) -> tuple[Tensor, Tensor | None]:
    """Learn M codebooks of 256 centroids each (k-means per sub-space, faiss) and, if ``rotate``, an OPQ rotation.

    With fewer than 256 rows every row's sub-vector is a centroid (the codes are then lossless).

    Args:
        x: ``(N, D)`` float, ``D % m == 0``.
        m: sub-spaces = bytes per coded row.
        rotate: learn an orthogonal ``(D, D)`` rotation R first (OPQ); ``x`` is coded as ``x @ R.T``.
        seed: k-means seed.
    Returns:
        ``codebooks`` ``(M, 256, D / M)`` float32 and ``rotation`` ``(D, D)`` float32 or None.
    """
    _check_matrix(x, "pq training input")
    n, dim = x.shape
    dsub = _pq_check(dim, m)
    faiss = _faiss()
    xs = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
    rotation = None
    if n < PQ_CENTROIDS:
        take = np.arange(PQ_CENTROIDS) % max(n, 1)
        codebooks = xs[take].reshape(PQ_CENTROIDS, m, dsub).transpose(1, 0, 2)
        return torch.from_numpy(np.ascontiguousarray(codebooks)), None
    pq = faiss.ProductQuantizer(dim, m, 8)
    pq.cp.seed = seed
    pq.cp.min_points_per_centroid = 1  # small catalogues are fine: no "provide more points" warning
    if rotate:
        opq = faiss.OPQMatrix(dim, m)
        opq.niter = OPQ_ITERATIONS
        opq_pq = faiss.ProductQuantizer(dim, m, 8)
        opq_pq.cp.seed, opq_pq.cp.min_points_per_centroid = seed, 1
        opq.pq = opq_pq  # keep a reference: faiss does not own it
        opq.train(xs)
        rotation = faiss.vector_to_array(opq.A).reshape(dim, dim).astype(np.float32)
        xs = np.ascontiguousarray(xs @ rotation.T)
    pq.train(xs)
    codebooks = faiss.vector_to_array(pq.centroids).reshape(m, PQ_CENTROIDS, dsub)
    return torch.from_numpy(codebooks.copy()), None if rotation is None else torch.from_numpy(rotation)


def train_rq(x: Tensor, m: int, beam: int = RQ_BEAM) -> Tensor:
    """Learn M residual codebooks of 256 full-width codewords (faiss ``ResidualQuantizer``, beam search).

    With fewer than 256 rows the first codebook holds every row and the others are zero (lossless codes).

    Args:
        x: ``(N, D)`` float.
        m: codebooks = bytes per coded row.
        beam: beam width while training and encoding.
    Returns:
        ``(M, 256, D)`` float32.
    """
    _check_matrix(x, "rq training input")
    n, dim = x.shape
    xs = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
    if n < PQ_CENTROIDS:
        codebooks = np.zeros((m, PQ_CENTROIDS, dim), dtype=np.float32)
        codebooks[0] = xs[np.arange(PQ_CENTROIDS) % max(n, 1)]
        return torch.from_numpy(codebooks)
    faiss = _faiss()
    rq = faiss.ResidualQuantizer(dim, m, 8)
    rq.max_beam_size = beam
    rq.train(xs)
    return torch.from_numpy(faiss.vector_to_array(rq.codebooks).reshape(m, PQ_CENTROIDS, dim).copy())


def _check_codebooks(codebooks: Tensor, rotation: Tensor | None = None, additive: bool = False) -> None:
    if codebooks.dim() != 3 or codebooks.shape[1] != PQ_CENTROIDS or codebooks.dtype != torch.float32:
        raise ValueError(
            f"codebooks must be float32 (M, {PQ_CENTROIDS}, D / M) (or (M, {PQ_CENTROIDS}, D) additive); "
            f"got {codebooks.dtype} {tuple(codebooks.shape)}"
        )
    dim = codebooks.shape[2] if additive else codebooks.shape[0] * codebooks.shape[2]
    if rotation is not None and tuple(rotation.shape) != (dim, dim):
        raise ValueError(
            f"rotation must be ({dim}, {dim}) for codebooks of D={dim}; got {tuple(rotation.shape)}"
        )


def pq_encode(x: Tensor, codebooks: Tensor, rotation: Tensor | None = None, additive: bool = False) -> Tensor:
    """Nearest centroid of each sub-vector: ``(N, D)`` float -> ``(N, M)`` uint8 codes (faiss).

    ``additive``: residual codes (beam search over the M full-width codebooks in order).
    """
    _check_matrix(x, "pq input")
    _check_codebooks(codebooks, rotation, additive)
    m, _, dsub = codebooks.shape
    width = dsub if additive else m * dsub
    if x.shape[1] != width:
        raise ValueError(f"pq input has {x.shape[1]} dims but the codebooks code {width}")
    faiss = _faiss()
    if additive:
        rq = faiss.ResidualQuantizer(width, m, 8)
        rq.max_beam_size = RQ_BEAM
        faiss.copy_array_to_vector(np.ascontiguousarray(codebooks.numpy()).ravel(), rq.codebooks)
        rq.is_trained = True
        xs = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        return torch.from_numpy(rq.compute_codes(xs))
    xs = x.detach().to(torch.float32)
    if rotation is not None:
        xs = xs @ rotation.T
    pq = faiss.ProductQuantizer(m * dsub, m, 8)
    faiss.copy_array_to_vector(np.ascontiguousarray(codebooks.numpy()).ravel(), pq.centroids)
    return torch.from_numpy(pq.compute_codes(np.ascontiguousarray(xs.numpy())))


def _check_pq_codes(codes: Tensor, codebooks: Tensor) -> None:
    _check_matrix(codes, "pq codes", float_only=False)
    if codes.dtype != torch.uint8 or codes.shape[1] != codebooks.shape[0]:
        raise ValueError(
            f"pq codes must be uint8 (N, {codebooks.shape[0]}); got {codes.dtype} {tuple(codes.shape)}"
        )


def pq_decode(
    codes: Tensor, codebooks: Tensor, rotation: Tensor | None = None, additive: bool = False
) -> Tensor:
    """``(N, M)`` uint8 codes -> ``(N, D)`` float32: the concatenated centroids (rotated back for OPQ), or for
    ``additive`` codes the sum of the M codewords."""
    _check_codebooks(codebooks, rotation, additive)
    _check_pq_codes(codes, codebooks)
    m = codebooks.shape[0]
    picked = codebooks[torch.arange(m), codes.long()]  # (N, M, dsub or D)
    out = picked.sum(dim=1) if additive else picked.reshape(len(codes), -1)
    return out if rotation is None else out @ rotation


def pq_lookup_tables(
    users: Tensor, codebooks: Tensor, rotation: Tensor | None = None, additive: bool = False
) -> Tensor:
    """``(B, M, 256)`` products of each user's sub-vectors with every centroid of the matching codebook (for
    ``additive`` codes: of the whole user vector with every codeword)."""
    _check_codebooks(codebooks, rotation, additive)
    m, _, dsub = codebooks.shape
    u = users.to(torch.float32)
    if rotation is not None:
        u = u @ rotation.T
    if additive:
        return torch.einsum("bd,mkd->bmk", u, codebooks)
    return torch.einsum("bmd,mkd->bmk", u.reshape(len(u), m, dsub), codebooks)


def pq_scores(
    users: Tensor,
    codes: Tensor,
    codebooks: Tensor,
    rotation: Tensor | None = None,
    additive: bool = False,
) -> Tensor:
    """Asymmetric inner products ``u . decode(code_i)``, summed from the users' look-up tables.

    Args:
        users: ``(B, D)`` float (exact).
        codes: ``(I, M)`` uint8.
        codebooks: ``(M, 256, D / M)`` float32 (additive: ``(M, 256, D)``); rotation: ``(D, D)`` or None.
        additive: residual (summed) codes instead of sub-spaces.
    Returns:
        ``(B, I)`` float32.
    """
    _check_pq_codes(codes, codebooks)
    lut = pq_lookup_tables(users, codebooks, rotation, additive).reshape(len(users), -1)  # (B, M * 256)
    m = codebooks.shape[0]
    out = torch.empty(len(users), len(codes))
    offsets = torch.arange(m) * PQ_CENTROIDS
    for start in range(0, len(codes), _ITEM_CHUNK):
        flat = codes[start : start + _ITEM_CHUNK].long() + offsets  # (chunk, M) columns of the flat table
        out[:, start : start + len(flat)] = lut[:, flat].sum(dim=2)
    return out


_PQ_CACHE: dict[str, tuple[Tensor, tuple, Any]] = {}  # scheme -> (coded tensor, its key, Encoded)


@dataclass(frozen=True)
class Encoded:
    """One table (users or items) in a quantised form.

    Attributes:
        data: fp32/fp16 ``(N, D)``, int8 ``(N, D)``, packed binary uint8 ``(N, ceil(D / 8))`` or PQ codes uint8
            ``(N, M)``.
        scale: ``(N,)`` float32 for int8, else None.
        dim: D, the embedding dimension the table codes.
        codebooks: ``(M, 256, D / M)`` float32 for PQ-coded rows (shared by every row), else None.
        rotation: ``(D, D)`` float32 OPQ rotation of PQ-coded rows, else None.

    Residual (additive) codes have codebooks ``(M, 256, D)``; see :attr:`additive`.
    """

    data: Tensor
    scale: Tensor | None
    dim: int
    codebooks: Tensor | None = None
    rotation: Tensor | None = None

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def rows(self, idx: Tensor) -> Encoded:
        """The sub-table of rows ``idx`` ``(B,)``."""
        scale = None if self.scale is None else self.scale[idx]
        return Encoded(self.data[idx], scale, self.dim, self.codebooks, self.rotation)

    @property
    def pq_coded(self) -> bool:
        """Whether the rows are PQ or RQ codes (else floats, int8 or bits)."""
        return self.codebooks is not None

    @property
    def additive(self) -> bool:
        """Whether the codes are additive (RQ: full-width codewords summed) rather than PQ sub-spaces."""
        return (
            self.codebooks is not None and self.codebooks.shape[0] > 1 and self.codebooks.shape[2] == self.dim
        )

    def tensors(self) -> list[Tensor]:
        """The stored tensors (codes, then scales, codebooks and rotation if any)."""
        extra = [self.scale, self.codebooks, self.rotation]
        return [self.data] + [t for t in extra if t is not None]


class Quantizer:
    """A quantisation scheme chosen by name: ``"fp32"``, ``"fp16"``, ``"int8"``, ``"binary"``, ``"pq4"``,
    ``"pq8"``, ``"pq16"``, (rotated) ``"opq4"``, ``"opq8"``, ``"opq16"`` or (residual) ``"rq4"``, ``"rq8"``,
    ``"rq16"``.

    ``compress`` turns float tables into the tensors to store (keys ``user_emb``, ``item_emb`` and, for int8,
    ``user_scale``, ``item_scale``; for PQ, ``pq_codebooks`` and, for OPQ, ``pq_rotation``); ``split`` reads them
    back; ``scores`` ranks items for users. ``encode`` codes query rows (users), ``encode_items`` the item table:
    the same for every scheme but PQ, whose queries stay exact.
    """

    def __init__(self, name: str) -> None:
        if name not in QUANTIZATIONS:
            raise ValueError(f"unknown quantisation {name!r}; expected one of {', '.join(QUANTIZATIONS)}")
        self.name = name

    def __repr__(self) -> str:
        return f"Quantizer({self.name!r})"

    @property
    def pq(self) -> bool:
        """Whether this is a product-quantisation scheme."""
        return self.name in PQ_SUBSPACES

    def encode_items(self, x: Tensor) -> Encoded:
        """Quantise the item table ``(N, D)`` (for PQ: learn the codebooks on it, then code every row).

        PQ codes of the last table coded per scheme are kept, so that a run's evaluation and its compression
        report (which both code the same tensor) learn the codebooks once.
        """
        if not self.pq:
            return self.encode(x)
        _check_matrix(x, f"{self.name} input")
        key = (x.data_ptr(), tuple(x.shape), x.dtype, x._version)
        cached = _PQ_CACHE.get(self.name)
        if cached is not None and cached[1] == key:
            return cached[2]
        m, dim = PQ_SUBSPACES[self.name], int(x.shape[1])
        if self.name.startswith("rq"):
            codebooks = train_rq(x, m)
            enc = Encoded(pq_encode(x, codebooks, additive=True), None, dim, codebooks)
        else:
            codebooks, rotation = train_pq(x, m, rotate=self.name.startswith("opq"))
            enc = Encoded(pq_encode(x, codebooks, rotation), None, dim, codebooks, rotation)
        _PQ_CACHE[self.name] = (x, key, enc)  # holding x keeps its memory (data_ptr) from being reused
        return enc

    def encode(self, x: Tensor) -> Encoded:
        """Quantise query/user rows ``(N, D)`` (PQ keeps them exact in float32: asymmetric distance)."""
        _check_matrix(x, f"{self.name} input")
        dim = int(x.shape[1])
        if self.name == "fp32" or self.pq:
            if self.pq and not self.name.startswith("rq"):
                _pq_check(dim, PQ_SUBSPACES[self.name])
            return Encoded(x.detach().to(torch.float32).contiguous(), None, dim)
        if self.name == "fp16":
            return Encoded(to_fp16(x).contiguous(), None, dim)
        if self.name == "int8":
            q, scale = quantize_int8(x)
            return Encoded(q, scale, dim)
        return Encoded(binarize(x), None, dim)

    def decode(self, enc: Encoded) -> Tensor:
        """The float32 vectors ``(N, D)`` the scores are dot products of (``+1/-1`` signs for binary)."""
        if enc.pq_coded:
            return pq_decode(enc.data, enc.codebooks, enc.rotation, enc.additive)
        if self.name in ("fp32", "fp16") or self.pq:
            return enc.data.to(torch.float32)
        if self.name == "int8":
            if enc.scale is None:
                raise ValueError("int8 table has no scales")
            return dequantize_int8(enc.data, enc.scale)
        return unpack_bits(enc.data, enc.dim).to(torch.float32) * 2 - 1

    def scores(self, users: Encoded, items: Encoded) -> Tensor:
        """``(B, I)`` float32 scores of ``B`` encoded users (or query rows) against ``I`` encoded items."""
        if users.dim != items.dim:
            raise ValueError(f"users have {users.dim} dims but items {items.dim}")
        if self.pq:
            if not items.pq_coded:
                raise ValueError(f"{self.name} items must be PQ codes (encode_items)")
            u = self.decode(users)  # a coded item as query (similar items) is decoded first
            if len(u) <= _XOR_MAX_USERS:
                return pq_scores(u, items.data, items.codebooks, items.rotation, items.additive)
            # many queries: the same sums as one BLAS product with the (rotated-space) centroids of each item
            if items.rotation is not None:
                u = u @ items.rotation.T
            return torch.cat(
                [
                    u @ pq_decode(items.data[i : i + _ITEM_CHUNK], items.codebooks, additive=items.additive).T
                    for i in range(0, len(items), _ITEM_CHUNK)
                ],
                dim=1,
            )
        if self.name == "fp32":
            return users.data @ items.data.T
        if self.name == "fp16":  # upcast in chunks: CPUs have no fast half-precision product
            u = users.data.to(torch.float32)
            return torch.cat(
                [
                    u @ items.data[i : i + _ITEM_CHUNK].to(torch.float32).T
                    for i in range(0, len(items), _ITEM_CHUNK)
                ],
                dim=1,
            )
        if self.name == "int8":
            if users.scale is None or items.scale is None:
                raise ValueError("int8 tables need scales")
            return int8_scores(users.data, users.scale, items.data, items.scale)
        return hamming_scores(users.data, items.data, dim=users.dim)

    def stored(self, users: Encoded, items: Encoded) -> dict[str, Tensor]:
        """The tensors to store for encoded ``users`` and ``items`` (the output of :meth:`compress`)."""
        out = {"user_emb": users.data, "item_emb": items.data}
        for who, enc in (("user", users), ("item", items)):
            if enc.scale is not None:
                out[f"{who}_scale"] = enc.scale
        if items.codebooks is not None:
            out["pq_codebooks"] = items.codebooks
        if items.rotation is not None:
            out["pq_rotation"] = items.rotation
        return out

    def compress(self, tables: Any) -> dict[str, Tensor]:
        """Quantise ``tables`` (a :class:`~recsys_gnn.tables.Tables` or a mapping with ``user_emb`` (U, D) and
        ``item_emb`` (I, D)) into the tensors to store."""
        get = tables.get if isinstance(tables, Mapping) else lambda key: getattr(tables, key, None)
        out: dict[str, Tensor] = {}
        widths: dict[str, int] = {}
        for who in ("user", "item"):
            x = get(f"{who}_emb")
            if x is None:
                raise ValueError(f"tables have no {who}_emb")
            x = torch.as_tensor(x)
            enc = self.encode_items(x) if who == "item" else self.encode(x)
            widths[who] = enc.dim
            out[f"{who}_emb"] = enc.data
            if enc.scale is not None:
                out[f"{who}_scale"] = enc.scale
            if enc.codebooks is not None:
                out["pq_codebooks"] = enc.codebooks
            if enc.rotation is not None:
                out["pq_rotation"] = enc.rotation
        if self.pq:
            if widths["user"] != widths["item"]:
                raise ValueError(
                    f"user_emb and item_emb differ in width: {tuple(out['user_emb'].shape)} vs "
                    f"{widths['item']}-d codes"
                )
        elif out["user_emb"].shape[1:] != out["item_emb"].shape[1:]:
            raise ValueError(
                f"user_emb and item_emb differ in width: {tuple(out['user_emb'].shape)} vs "
                f"{tuple(out['item_emb'].shape)}"
            )
        return out

    def split(self, stored: Mapping[str, Tensor], dim: int) -> tuple[Encoded, Encoded]:
        """Read the output of :meth:`compress` back as ``(users, items)``; checks dtypes and shapes."""
        expected = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.int8, "binary": torch.uint8}
        codebooks = rotation = None
        if self.pq:
            m = PQ_SUBSPACES[self.name]
            additive = self.name.startswith("rq")
            width = dim if additive else _pq_check(dim, m)
            if "pq_codebooks" not in stored:
                raise ValueError(f"{self.name} tables lack 'pq_codebooks'; found {sorted(stored)}")
            codebooks, rotation = stored["pq_codebooks"], stored.get("pq_rotation")
            _check_codebooks(codebooks, rotation, additive)
            if tuple(codebooks.shape) != (m, PQ_CENTROIDS, width):
                raise ValueError(
                    f"pq_codebooks should be ({m}, {PQ_CENTROIDS}, {width}) for {self.name} at dim {dim}; "
                    f"got {tuple(codebooks.shape)}"
                )
            if self.name.startswith("opq") and rotation is None:
                raise ValueError(f"{self.name} tables lack 'pq_rotation'")
        parts = []
        for who in ("user", "item"):
            key = f"{who}_emb"
            if key not in stored:
                raise ValueError(f"{self.name} tables lack {key!r}; found {sorted(stored)}")
            if self.pq:
                want, width = (
                    (torch.float32, dim) if who == "user" else (torch.uint8, PQ_SUBSPACES[self.name])
                )
            else:
                want = expected[self.name]
                width = math.ceil(dim / 8) if self.name == "binary" else dim
            data = stored[key]
            if data.dtype != want or data.dim() != 2 or data.shape[1] != width:
                raise ValueError(
                    f"{key} should be {want} (N, {width}) for {self.name} at dim {dim}; "
                    f"got {data.dtype} {tuple(data.shape)}"
                )
            scale = None
            if self.name == "int8":
                skey = f"{who}_scale"
                if skey not in stored or stored[skey].shape != (data.shape[0],):
                    got = tuple(stored[skey].shape) if skey in stored else "nothing"
                    raise ValueError(f"int8 tables need {skey!r} of shape ({data.shape[0]},); got {got}")
                scale = stored[skey].to(torch.float32)
            if who == "item" and self.pq:
                parts.append(Encoded(data, None, dim, codebooks, rotation))
            else:
                parts.append(Encoded(data, scale, dim))
        return parts[0], parts[1]
