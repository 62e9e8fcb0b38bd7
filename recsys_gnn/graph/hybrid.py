"""Hybrid graph: user-item interaction edges plus item-item text-kNN edges in one node set."""

from __future__ import annotations

import math
import numbers

import dgl
import numpy as np

from recsys_gnn.graph.base import (
    GraphBuilder,
    positive_int,
    symmetric_graph,
    validate_item_emb,
    validate_train,
)
from recsys_gnn.graph.item_knn import knn_edges
from recsys_gnn.graph.user_item import user_item_edges


class HybridGraph(GraphBuilder):
    """User-item edges and item kNN edges (item ``i`` is node ``U + i``), normalised together.

    The kNN edges let new items that have text but no interactions receive messages from similar items,
    and through them from those items' users.

    Args:
        k: text neighbours per item, >= 1.
        knn_weight: factor on kNN cosines relative to user-item edge weights, > 0.
        self_loops: add a weight-1 loop on every node before normalising.
        use_weights: weight user-item edges by the implicit weights passed to ``build``.
        batch_size: query rows per similarity block of the kNN search, >= 1.
    """

    has_user_nodes = True
    needs_item_emb = True

    def __init__(
        self,
        k: int = 10,
        knn_weight: float = 1.0,
        self_loops: bool = False,
        use_weights: bool = False,
        batch_size: int = 4096,
    ) -> None:
        if not isinstance(knn_weight, numbers.Real) or not math.isfinite(knn_weight) or knn_weight <= 0:
            raise ValueError(f"knn_weight must be a finite float > 0, got {knn_weight}")
        self.k = positive_int("k", k)
        self.knn_weight = float(knn_weight)
        self.self_loops = bool(self_loops)
        self.use_weights = bool(use_weights)
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
        """Build the ``U + I`` node graph; needs ``item_emb`` (I, E)."""
        train, weight = validate_train(train, n_users, n_items, weight)
        item_emb = validate_item_emb(item_emb, n_items, type(self).__name__)
        ui_src, ui_dst, ui_w = user_item_edges(train, n_users, weight, self.use_weights)
        kn_src, kn_dst, kn_w = knn_edges(item_emb, self.k, self.batch_size)
        src = np.concatenate([ui_src, kn_src + n_users])
        dst = np.concatenate([ui_dst, kn_dst + n_users])
        w = np.concatenate([ui_w, self.knn_weight * kn_w])
        return symmetric_graph(src, dst, n_users + n_items, w, self_loops=self.self_loops)

    def __repr__(self) -> str:
        return (
            f"HybridGraph(k={self.k}, knn_weight={self.knn_weight}, self_loops={self.self_loops}, "
            f"use_weights={self.use_weights}, batch_size={self.batch_size})"
        )
