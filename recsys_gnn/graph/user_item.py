"""Bipartite user-item interaction graph."""

from __future__ import annotations

import dgl
import numpy as np

from recsys_gnn.graph.base import GraphBuilder, symmetric_graph, validate_train


def user_item_edges(
    train: np.ndarray, n_users: int, weight: np.ndarray | None, use_weights: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected user-item edges ``(user node, U + item node, raw weight)`` with repeated pairs merged.

    A pair seen several times counts once (weight 1) without weights; with weights its weights are summed,
    so repeated listens accumulate instead of the last one winning.

    Args:
        train: ``(M, 2)`` validated int64 pairs.
        n_users: U, the item node offset.
        weight: ``(M,)`` validated weights (required when ``use_weights``).
        use_weights: use ``weight`` rather than 1 per pair.

    Returns:
        ``(src, dst, w)``, each ``(E,)``.
    """
    if use_weights and weight is None:
        raise ValueError("use_weights=True needs the weight array (M,) aligned with train")
    src = train[:, 0]
    dst = train[:, 1] + n_users
    n_nodes = max(n_users + int(train[:, 1].max(initial=-1)) + 1, 1)
    key = src * n_nodes + dst
    uniq, inverse = np.unique(key, return_inverse=True)
    if use_weights:
        w = np.bincount(inverse, weights=weight, minlength=len(uniq))
    else:
        w = np.ones(len(uniq), dtype=np.float64)
    return uniq // n_nodes, uniq % n_nodes, w


class UserItemGraph(GraphBuilder):
    """Users and items as one node set, a user linked to every item it interacted with in training.

    Args:
        self_loops: add a loop on every node before normalising.
        use_weights: weight edges by the implicit weights passed to ``build`` (e.g. log1p play counts).
    """

    has_user_nodes = True

    def __init__(self, self_loops: bool = False, use_weights: bool = False) -> None:
        self.self_loops = bool(self_loops)
        self.use_weights = bool(use_weights)

    def build(
        self,
        train: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        item_emb: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> dgl.DGLGraph:
        """Build the ``U + I`` node bipartite graph; ``item_emb`` is not used."""
        train, weight = validate_train(train, n_users, n_items, weight)
        src, dst, w = user_item_edges(train, n_users, weight, self.use_weights)
        return symmetric_graph(src, dst, n_users + n_items, w, self_loops=self.self_loops)

    def __repr__(self) -> str:
        return f"UserItemGraph(self_loops={self.self_loops}, use_weights={self.use_weights})"
