"""Fast exact scoring of a quantised item table: what serving runs per request.

The reference scores (:meth:`Quantizer.scores`) convert the int8/fp16 table to float32 on every request, which
made int8 slower than fp32. A :class:`Searcher` is built once per table and picks, per scheme, the fastest path
that ranks like the reference (measured with ``python -m recsys_gnn.compress.speed``, see
experiments/compression/pq.md):

- ``decoded``: decode the table once to float32 and keep it (fp16/int8: the memory saving is then on disk and
  in transfer only, RAM holds fp32); a request is one BLAS product. Scores equal the reference up to float
  rounding (int8: ``deq(q_u) . deq(q_i)`` instead of the exact integer product times the scales).
- ``faiss``: PQ codes searched by faiss ``IndexPQ`` (asymmetric distance with look-up tables, exhaustive, the
  table stays coded in RAM); RQ codes by the same ``IndexPQ`` kernel (see below); binary codes by
  ``IndexBinaryFlat``.
- ``reference``: :meth:`Quantizer.scores` itself.

RQ through IndexPQ: an RQ item is ``sum_m C_m[c_m]`` (M full-width codebooks), so its inner product with a query
``q`` is ``sum_m <q, C_m[c_m]>``: exactly PQ's inner-product ADC in a space of M copies of ``q`` whose m-th
sub-space's centroids are ``C_m``. The codes are stored unchanged (one byte per codebook in both layouts); a
request costs M x 256 x D multiply-adds more for its look-up tables (131k at rq8, 64-d) and then the PQ scan.
faiss' own ``IndexResidualQuantizer`` look-up-table search is not used: it measured slower than the fp32 product.

``auto`` = ``faiss`` for PQ/OPQ/RQ when faiss is installed (else ``decoded``), ``decoded`` for fp32/fp16/int8,
``reference`` for binary (its XOR path is exact and keeps tie order; ``faiss`` is an option). Timings:
``python -m recsys_gnn.compress.speed`` (experiments/compression/pq.md, learned_best.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recsys_gnn.compress.quantize import PQ_SUBSPACES, Encoded, Quantizer, pq_decode

METHODS = ("auto", "reference", "decoded", "faiss")


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_method(scheme: str, method: str = "auto") -> str:
    """The scoring path ``method`` means for ``scheme`` (``auto`` resolved; ``faiss`` checked)."""
    if method not in METHODS:
        raise ValueError(f"unknown scoring method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "auto":
        if scheme in PQ_SUBSPACES:
            return "faiss" if _has_faiss() else "decoded"
        return "reference" if scheme == "binary" else "decoded"
    if method == "faiss":
        if scheme not in PQ_SUBSPACES and scheme != "binary":
            raise ValueError(f"scoring method 'faiss' serves PQ and binary tables, not {scheme}")
        if not _has_faiss():
            raise ImportError("scoring method 'faiss' needs faiss: pip install faiss-cpu")
    return method


class Searcher:
    """Scores and top-k of query rows against one encoded item table, by the path ``method`` (see module doc).

    Args:
        quantizer: the table's scheme.
        items: the encoded item table (``Quantizer.encode_items``).
        method: auto | reference | decoded | faiss.
    """

    def __init__(self, quantizer: Quantizer, items: Encoded, method: str = "auto") -> None:
        self.quantizer, self.items = quantizer, items
        self.method = resolve_method(quantizer.name, method)
        self.n_items = len(items)
        self._cache: Tensor | None = None
        self._index = None
        if self.method == "decoded":
            # PQ: centroids in the rotated space, queries are rotated instead (one D x D product per request)
            if items.pq_coded:
                table = pq_decode(items.data, items.codebooks, additive=items.additive)
            else:
                table = quantizer.decode(items)
            self._cache = table.contiguous()  # (I, D) float32
        elif self.method == "faiss":
            self._index = self._faiss_index()

    def __repr__(self) -> str:
        return f"Searcher({self.quantizer.name!r}, items={self.n_items}, method={self.method!r})"

    def _faiss_index(self):
        import faiss

        faiss.omp_set_num_threads(torch.get_num_threads())
        data = np.ascontiguousarray(self.items.data.numpy())
        if self.quantizer.name == "binary":
            index = faiss.IndexBinaryFlat(data.shape[1] * 8)  # padding bits are 0 in every code
            index.add(data)
            return index
        m, _, dsub = self.items.codebooks.shape
        # PQ: M sub-spaces of width D/M; RQ: M full-width codebooks, searched as PQ over M copies of the query
        index = faiss.IndexPQ(m * dsub, m, 8, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(
            np.ascontiguousarray(self.items.codebooks.numpy()).ravel(), index.pq.centroids
        )
        index.is_trained = True
        faiss.copy_array_to_vector(data.ravel(), index.codes)  # the stored codes, not re-encoded
        index.ntotal = data.shape[0]
        return index

    def _queries(self, users: Encoded) -> Tensor:
        """Float32 query rows in the space of the cache / index (OPQ: rotated)."""
        u = self.quantizer.decode(users)
        if self.items.rotation is not None:
            u = u @ self.items.rotation.T
        return u

    def scores(self, users: Encoded) -> Tensor:
        """``(B, I)`` float32 scores of the query rows against every item."""
        if self.method == "decoded":
            return self._queries(users) @ self._cache.T
        return self.quantizer.scores(users, self.items)

    def search(self, users: Encoded, k: int) -> tuple[Tensor, Tensor]:
        """The best ``k`` items of each query row: ``(B, k)`` float32 scores and int64 item rows, best first."""
        k = min(int(k), self.n_items)
        if self.method != "faiss":
            return torch.topk(self.scores(users), k, dim=1)
        if self.quantizer.name == "binary":
            dist, idx = self._index.search(np.ascontiguousarray(users.data.numpy()), k)
            return torch.from_numpy(users.dim - 2 * dist.astype(np.float32)), torch.from_numpy(idx)
        q = self._queries(users)  # (B, D)
        if self.items.additive:
            q = q.repeat(1, self.items.codebooks.shape[0])  # (B, M * D): one copy per residual codebook
        q = np.ascontiguousarray(q.numpy(), dtype=np.float32)
        vals, idx = self._index.search(q, k)
        return torch.from_numpy(vals), torch.from_numpy(idx)
