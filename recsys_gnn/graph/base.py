"""Graph builder interface, the shared symmetric-graph assembly step, and the edge look-up used by leak tests."""

from __future__ import annotations

import logging
import numbers
from abc import ABC, abstractmethod

import dgl
import numpy as np
import torch

from recsys_gnn.graph.normalize import sym_norm_weights

logger = logging.getLogger(__name__)


class GraphBuilder(ABC):
    """Builds a homogeneous, symmetric DGL graph from training interactions.

    Every built graph carries ``edata["w"]`` (E,) float32, the symmetric normalised weight
    ``D^-1/2 A D^-1/2`` (degrees include self loops when the builder adds them), and ``ndata["deg"]`` (N,)
    int64, the raw in-degree before self loops. Nodes without edges still exist.

    Attributes:
        has_user_nodes: True when nodes ``0..U-1`` are users and ``U..U+I-1`` items; False when nodes
            ``0..I-1`` are items.
    """

    has_user_nodes: bool
    #: whether build() needs ``item_emb`` (builders that link items by text similarity)
    needs_item_emb: bool = False

    @abstractmethod
    def build(
        self,
        train: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        item_emb: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> dgl.DGLGraph:
        """Build the graph from training pairs only.

        Args:
            train: ``(M, 2)`` int64 ``[user, item]`` training pairs.
            n_users: number of users U.
            n_items: number of items I.
            item_emb: ``(I, E)`` item text embeddings, for builders that link items by similarity.
            weight: ``(M,)`` implicit weights of ``train`` rows, for builders with ``use_weights=True``.

        Returns:
            The graph with ``U + I`` nodes if ``has_user_nodes`` else ``I`` nodes.
        """

    def num_nodes(self, n_users: int, n_items: int) -> int:
        """Number of nodes the built graph has."""
        return n_users + n_items if self.has_user_nodes else n_items


def positive_int(name: str, value: int) -> int:
    """Return ``value`` as int, or raise ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def validate_train(
    train: np.ndarray, n_users: int, n_items: int, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check training pairs (and optional weights) and return them as int64 / float64 arrays.

    Raises:
        ValueError: on a wrong shape, negative sizes, ids out of range, or negative/non-finite weights.
    """
    if n_users < 0 or n_items < 0:
        raise ValueError(f"n_users and n_items must be >= 0, got {n_users} and {n_items}")
    train = np.asarray(train)
    if train.ndim != 2 or train.shape[1] != 2:
        raise ValueError(f"train must have shape (M, 2) [user, item], got {train.shape}")
    if train.size and not np.issubdtype(train.dtype, np.integer):
        raise ValueError(f"train must hold integer ids, got dtype {train.dtype}")
    train = train.astype(np.int64, copy=False)
    if len(train):
        if train[:, 0].min() < 0 or train[:, 0].max() >= n_users:
            raise ValueError(f"train user ids must lie in [0, {n_users})")
        if train[:, 1].min() < 0 or train[:, 1].max() >= n_items:
            raise ValueError(f"train item ids must lie in [0, {n_items})")
    if weight is None:
        return train, None
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != (len(train),):
        raise ValueError(f"weight must have shape ({len(train)},) like train, got {weight.shape}")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("weight must be finite and >= 0")
    return train, weight


def validate_item_emb(item_emb: np.ndarray | None, n_items: int, builder: str) -> np.ndarray:
    """Check ``item_emb`` is an ``(I, E)`` finite float matrix and return it as float32."""
    if item_emb is None:
        raise ValueError(f"{builder} links items by embedding similarity and needs item_emb of shape (I, E)")
    item_emb = np.asarray(item_emb, dtype=np.float32)
    if item_emb.ndim != 2 or item_emb.shape[0] != n_items:
        raise ValueError(f"item_emb must have shape ({n_items}, E), got {item_emb.shape}")
    if not np.isfinite(item_emb).all():
        raise ValueError("item_emb must be finite")
    return item_emb


def symmetric_graph(
    src: np.ndarray,
    dst: np.ndarray,
    num_nodes: int,
    w: np.ndarray | None = None,
    *,
    self_loops: bool = False,
) -> dgl.DGLGraph:
    """Assemble a symmetric DGL graph with ``edata["w"]`` and ``ndata["deg"]`` from undirected edges.

    Each undirected edge may be listed once in either direction or in both; both directions are added and
    duplicates are merged by keeping the largest weight. Edges ``u == u`` and edges of weight <= 0 are
    dropped: a zero-weight edge carries nothing in weighted propagation, yet unweighted aggregators
    (attention, max-pool) would still read it.

    Args:
        src: ``(E,)`` one endpoint of each edge.
        dst: ``(E,)`` the other endpoint.
        num_nodes: N, the node count of the graph, isolated nodes included.
        w: ``(E,)`` raw non-negative weights, or None for 1.
        self_loops: add a weight-1 loop on every node (counted in the normalisation, not in ``deg``).

    Returns:
        The graph, edges sorted by (src, dst), self loops appended last.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    w = np.ones(len(src), dtype=np.float64) if w is None else np.asarray(w, dtype=np.float64)
    if not (src.shape == dst.shape == w.shape) or src.ndim != 1:
        raise ValueError(
            f"src, dst and w must be 1-D of equal length, got {src.shape}, {dst.shape}, {w.shape}"
        )
    keep = (src != dst) & (w > 0)
    src, dst, w = src[keep], dst[keep], w[keep]
    src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    w = np.concatenate([w, w])
    if len(src):
        key = src * num_nodes + dst
        order = np.argsort(key, kind="stable")
        key, w = key[order], w[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        w = np.maximum.reduceat(w, starts)
        key = key[starts]
        src, dst = key // num_nodes, key % num_nodes
    deg = np.bincount(dst, minlength=num_nodes).astype(np.int64)
    if self_loops:
        loops = np.arange(num_nodes, dtype=np.int64)
        src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
        w = np.concatenate([w, np.ones(num_nodes)])
    graph = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=num_nodes, idtype=torch.int64)
    graph.edata["w"] = sym_norm_weights(src, dst, num_nodes, w)
    graph.ndata["deg"] = torch.from_numpy(deg)
    logger.info(
        "built graph: %d nodes, %d directed edges, %d isolated nodes, self_loops=%s",
        num_nodes,
        graph.num_edges(),
        int((deg == 0).sum()),
        self_loops,
    )
    return graph


def edges_between(graph: dgl.DGLGraph, n_users: int, pairs: np.ndarray) -> np.ndarray:
    """Whether the graph links each ``(user, item)`` pair, in either direction.

    Users are nodes ``0..U-1`` and item ``i`` is node ``U + i`` (the layout of builders with
    ``has_user_nodes=True``). Leak tests assert this is all False for held-out pairs.

    Args:
        graph: a graph with user nodes.
        n_users: U.
        pairs: ``(P, 2)`` ``[user, item]`` pairs.

    Returns:
        ``(P,)`` bool.

    Raises:
        ValueError: if a pair's node id is outside the graph.
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (P, 2), got {pairs.shape}")
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    u = torch.from_numpy(pairs[:, 0])
    i = torch.from_numpy(pairs[:, 1] + n_users)
    n = graph.num_nodes()
    if u.min() < 0 or u.max() >= n_users or i.min() < n_users or i.max() >= n:
        raise ValueError(f"pairs must map to user nodes [0, {n_users}) and item nodes [{n_users}, {n})")
    found = graph.has_edges_between(u, i) | graph.has_edges_between(i, u)
    return found.numpy().astype(bool)
