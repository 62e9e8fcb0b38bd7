"""Item kNN graph: every item linked to its nearest neighbours by cosine of its text embedding."""

from __future__ import annotations

import logging

import dgl
import numpy as np
import torch

from recsys_gnn.graph.base import (
    GraphBuilder,
    positive_int,
    symmetric_graph,
    validate_item_emb,
    validate_train,
)

logger = logging.getLogger(__name__)

# Largest similarity block (rows x columns) held at once: 2**24 float32 = 64 MiB.
MAX_BLOCK_ELEMENTS = 2**24


def knn_edges(
    item_emb: np.ndarray, k: int, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges from every item to its ``k`` most cosine-similar other items.

    Rows are processed ``batch_size`` at a time and columns in chunks so that at most
    ``MAX_BLOCK_ELEMENTS`` similarities exist at once; a running top-k is merged across column chunks, so
    the result is exact while memory stays bounded for millions of items. Neighbours with cosine <= 0 are
    dropped (their clipped weight would be 0). Items with a zero embedding get no neighbours.

    Args:
        item_emb: ``(I, E)`` float item embeddings.
        k: neighbours per item; capped at ``I - 1``.
        batch_size: query rows per block.

    Returns:
        ``(src, dst, w)``, each ``(E,)``: item, neighbour, cosine in ``(0, 1]``.
    """
    n_items = item_emb.shape[0]
    k = min(k, n_items - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    emb = torch.from_numpy(np.ascontiguousarray(item_emb, dtype=np.float32))
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    col_chunk = max(k, MAX_BLOCK_ELEMENTS // batch_size)
    out_s, out_d, out_w = [], [], []
    with torch.no_grad():
        for r0 in range(0, n_items, batch_size):
            query = emb[r0 : r0 + batch_size]
            n_q = query.shape[0]
            q_ids = torch.arange(r0, r0 + n_q)
            best_v = torch.full((n_q, k), -float("inf"))
            best_i = torch.full((n_q, k), -1, dtype=torch.int64)
            for c0 in range(0, n_items, col_chunk):
                sims = query @ emb[c0 : c0 + col_chunk].T  # (n_q, C)
                n_c = sims.shape[1]
                own = (q_ids >= c0) & (q_ids < c0 + n_c)
                sims[own.nonzero().squeeze(1), q_ids[own] - c0] = -float("inf")  # never your own neighbour
                v, i = sims.topk(min(k, n_c), dim=1)
                cand_v = torch.cat([best_v, v], dim=1)
                cand_i = torch.cat([best_i, i + c0], dim=1)
                best_v, pick = cand_v.topk(k, dim=1)
                best_i = cand_i.gather(1, pick)
            keep = best_v > 0
            out_s.append(q_ids.unsqueeze(1).expand(-1, k)[keep].numpy())
            out_d.append(best_i[keep].numpy())
            out_w.append(best_v[keep].clamp(max=1.0).double().numpy())
    return np.concatenate(out_s), np.concatenate(out_d), np.concatenate(out_w)


class ItemKNNGraph(GraphBuilder):
    """Items linked to their ``k`` nearest neighbours by cosine of ``item_emb``; interactions are not used.

    The directed kNN relation is symmetrised (an edge exists when either item chose the other), weighted by
    the cosine clipped at 0. Because it only needs text, it connects items with no interactions at all.

    Args:
        k: neighbours chosen per item, >= 1.
        self_loops: add a weight-1 loop on every item before normalising.
        batch_size: query rows per similarity block, >= 1.
    """

    has_user_nodes = False
    needs_item_emb = True

    def __init__(self, k: int = 10, self_loops: bool = True, batch_size: int = 4096) -> None:
        self.k = positive_int("k", k)
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
        """Build the ``I`` node kNN graph; ``train`` is only validated and ``weight`` is not used."""
        validate_train(train, n_users, n_items)
        item_emb = validate_item_emb(item_emb, n_items, type(self).__name__)
        src, dst, w = knn_edges(item_emb, self.k, self.batch_size)
        return symmetric_graph(src, dst, n_items, w, self_loops=self.self_loops)

    def __repr__(self) -> str:
        return f"ItemKNNGraph(k={self.k}, self_loops={self.self_loops}, batch_size={self.batch_size})"
