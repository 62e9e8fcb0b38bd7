"""Item-item co-occurrence graph: items linked when the same users interacted with both in training."""

from __future__ import annotations

import logging

import dgl
import numpy as np
import scipy.sparse as sp

from recsys_gnn.graph.base import GraphBuilder, positive_int, symmetric_graph, validate_train

logger = logging.getLogger(__name__)

WEIGHTINGS = ("count", "cosine", "pmi")


def topk_per_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` largest values of every row of a COO triple (ties broken by smaller column).

    Args:
        rows, cols, vals: ``(nnz,)`` entries of a sparse matrix, in any order.
        k: entries kept per row.

    Returns:
        The kept ``(rows, cols, vals)``, sorted by row then descending value.
    """
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    keep = (np.arange(len(rows)) - run_start) < k
    return rows[keep], cols[keep], vals[keep]


class ItemItemGraph(GraphBuilder):
    """Items linked by co-occurrence in users' training histories (``C = X^T X`` without its diagonal).

    With ``n_i`` the number of training users of item i and N the number of users with any training
    interaction, an entry ``C_ij >= min_count`` is weighted by

    - ``count``: ``C_ij``;
    - ``cosine``: ``C_ij / sqrt(n_i n_j)``;
    - ``pmi``: ``log(C_ij N / (n_i n_j))``, kept only where positive.

    Each item keeps its ``topk`` largest weights, then the matrix is made symmetric by the element-wise max
    (an edge survives when either endpoint kept it). ``C`` is computed in blocks of ``batch_size`` item rows,
    pruned block by block, so the full ``I x I`` co-occurrence matrix is never held at once.

    Args:
        weighting: one of ``count``, ``cosine``, ``pmi``.
        topk: neighbours kept per item, >= 1.
        min_count: minimum number of shared users for an edge, >= 1.
        self_loops: add a weight-1 loop on every item before normalising.
        batch_size: item rows of ``C`` computed at once, >= 1.
    """

    has_user_nodes = False

    def __init__(
        self,
        weighting: str = "cosine",
        topk: int = 20,
        min_count: int = 1,
        self_loops: bool = True,
        batch_size: int = 4096,
    ) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.topk = positive_int("topk", topk)
        self.min_count = positive_int("min_count", min_count)
        self.self_loops = bool(self_loops)
        self.batch_size = positive_int("batch_size", batch_size)

    def build(
        self,
        train: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        item_emb: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> dgl.DGLGraph:
        """Build the ``I`` node co-occurrence graph; ``item_emb`` and ``weight`` are not used."""
        train, _ = validate_train(train, n_users, n_items)
        src, dst, w = self.pruned_edges(train, n_users, n_items)
        return symmetric_graph(src, dst, n_items, w, self_loops=self.self_loops)

    def pruned_edges(
        self, train: np.ndarray, n_users: int, n_items: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed top-k edges ``(item, neighbour, weight)`` before symmetrisation, each ``(E,)``."""
        x = sp.csr_matrix(
            (np.ones(len(train), dtype=np.float64), (train[:, 0], train[:, 1])), shape=(n_users, n_items)
        )
        x.sum_duplicates()
        x.data[:] = 1.0  # a user who repeats an item still co-occurs with it once
        n_per_item = np.asarray(x.sum(axis=0)).ravel()
        n_active_users = int((np.diff(x.indptr) > 0).sum())
        xt = x.T.tocsr()
        out_r, out_c, out_w = [], [], []
        for start in range(0, n_items, self.batch_size):
            block = (xt[start : start + self.batch_size] @ x).tocoo()
            rows = block.row.astype(np.int64) + start
            cols = block.col.astype(np.int64)
            counts = block.data
            keep = (rows != cols) & (counts >= self.min_count)
            rows, cols, counts = rows[keep], cols[keep], counts[keep]
            vals = self._weigh(rows, cols, counts, n_per_item, n_active_users)
            pos = vals > 0
            rows, cols, vals = topk_per_row(rows[pos], cols[pos], vals[pos], self.topk)
            out_r.append(rows)
            out_c.append(cols)
            out_w.append(vals)
        if not out_r:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_w)

    def _weigh(
        self, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n_per_item: np.ndarray, n_users: int
    ) -> np.ndarray:
        if self.weighting == "count":
            return counts
        if self.weighting == "cosine":
            return counts / np.sqrt(n_per_item[rows] * n_per_item[cols])
        # every item in a co-occurring pair has n_i >= C_ij >= 1, so the log argument is positive
        return np.log(counts * n_users / (n_per_item[rows] * n_per_item[cols]))

    def __repr__(self) -> str:
        return (
            f"ItemItemGraph(weighting={self.weighting!r}, topk={self.topk}, min_count={self.min_count}, "
            f"self_loops={self.self_loops}, batch_size={self.batch_size})"
        )
