"""Neighbour-sampled LightGCN propagation: the K-layer output of a batch's seed nodes only.

Full-graph LightGCN costs O(edges + nodes) per training step, so an epoch of O(interactions / batch) steps grows
quadratically with the data. :func:`sampled_lightgcn` instead computes ``sum_k c_k E^(k)`` for the seed rows from
DGL neighbour samples (``dgl.sampling.sample_neighbors`` + ``dgl.to_block``, one block per layer, as
``dgl.dataloading.NeighborSampler.sample_blocks`` does), so a step costs O(seeds x fanout^K) at most, and asks
``feat_of`` for the ``E^(0)`` rows of just the sampled input nodes (a compressor projects only their text).

Unbiasedness: a node with in-degree ``d`` keeps ``n = min(d, fanout)`` in-edges drawn uniformly without
replacement, so each edge is kept with probability ``n / d``; its weight is multiplied by ``d / n`` (Horvitz-
Thompson), which makes every sampled aggregation an unbiased estimate of the full sum, and, the samples of the
layers being independent given the nodes they start from and the propagation linear, every ``E^(k)`` and the
layer combination too (in expectation over the samples; each draw differs). ``d <= fanout`` (or a fanout of
-1 / None) keeps every edge with its weight unchanged, so ``fanout=[-1] * K`` is the full propagation restricted
to the seeds.

A seed's ``E^(k)`` needs ``E^(k-1)`` of its sampled neighbours and of itself (for the layer sum): DGL blocks list
their destination nodes first among their source nodes, so the seeds are the first rows at every layer.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import Tensor

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.graph.spmm import BACKENDS, propagate

ALL_NEIGHBOURS = -1


def check_fanout(
    fanout: int | Sequence[int | None] | None, num_layers: int, key: str = "model.fanout"
) -> list[int] | None:
    """``fanout`` as a list of ``num_layers`` ints (-1 = every neighbour), or None (full-graph training).

    Accepts None, one integer for every layer, or a list with one entry per layer, each an integer >= 1 or -1
    (a None entry reads as -1).

    Raises:
        ConfigError: one line naming ``key``, the layer count and what was given.
    """
    if fanout is None:
        return None

    def ok(v: object) -> bool:
        return v is None or (
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and (v >= 1 or v == ALL_NEIGHBOURS)
        )

    values = [fanout] * num_layers if isinstance(fanout, numbers.Integral) else fanout
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        values = None
    if values is None or isinstance(fanout, bool) or len(values) != num_layers or not all(map(ok, values)):
        shown = list(fanout) if isinstance(fanout, Sequence) and not isinstance(fanout, str) else fanout
        raise ConfigError(
            f"{key} must be null, one integer or a list of num_layers={num_layers} integers, each >= 1 or -1 "
            f"(all neighbours), got {shown!r}"
        )
    return [ALL_NEIGHBOURS if v is None else int(v) for v in values]


@dataclass
class SampledBlocks:
    """Layer-wise neighbour samples of a set of seed nodes.

    Attributes:
        blocks: K DGL blocks, input side first; ``blocks[k]`` computes ``E^(k+1)`` of its destination nodes from
            ``E^(k)`` of its source nodes (destination nodes first among them).
        weights: K ``(E_k,)`` rescaled edge weights of the blocks (see the module docstring).
        input_nodes: ``(N_0,)`` graph node ids of ``blocks[0]``'s source nodes (whose ``E^(0)`` is needed).
        n_seeds: number of distinct seeds (the first ``n_seeds`` rows at every layer).
        inverse: ``(S,)`` row of each given seed among the distinct ones.
    """

    blocks: list[dgl.DGLGraph]
    weights: list[Tensor]
    input_nodes: Tensor
    n_seeds: int
    inverse: Tensor


def sample_blocks(
    graph: dgl.DGLGraph,
    seeds: Tensor,
    fanouts: Sequence[int | None],
    edge_weight: Tensor | None = None,
) -> SampledBlocks:
    """Sample ``len(fanouts)`` layers of in-neighbours, from the seeds outward, with rescaled edge weights.

    Args:
        graph: homogeneous graph whose in-edges carry the propagation weights.
        seeds: ``(S,)`` node ids (duplicates allowed; any device: sampling runs on the graph's).
        fanouts: neighbours per node for each layer, input layer first (``fanouts[k]`` feeds ``E^(k+1)``);
            -1 or None: every neighbour.
        edge_weight: ``(E,)`` weights in edge-id order; None: ``graph.edata["w"]``.

    Returns:
        The :class:`SampledBlocks`, on the graph's device (weights on ``edge_weight``'s).
    """
    if seeds.dim() != 1:
        raise ValueError(f"seeds must be 1-D node ids, got shape {tuple(seeds.shape)}")
    if not len(fanouts):
        raise ValueError("fanouts must have one entry per layer, got none")
    if edge_weight is None:
        if "w" not in graph.edata:
            raise ValueError('edge_weight is None and the graph has no edata["w"]; pass edge_weight (E,)')
        edge_weight = graph.edata["w"]
    if edge_weight.shape != (graph.num_edges(),):
        raise ValueError(f"edge_weight must be ({graph.num_edges()},); got {tuple(edge_weight.shape)}")
    uniq, inverse = torch.unique(seeds.to(graph.device, torch.int64), return_inverse=True)
    nodes = uniq
    blocks: list[dgl.DGLGraph] = []
    weights: list[Tensor] = []
    for fanout in reversed(list(fanouts)):
        fanout = ALL_NEIGHBOURS if fanout is None else int(fanout)
        frontier = dgl.sampling.sample_neighbors(graph, nodes, fanout, copy_ndata=False, copy_edata=True)
        eid = frontier.edata[dgl.EID]  # (E_k,) graph edge ids; to_block keeps the frontier's edge order
        block = dgl.to_block(frontier, nodes)
        # Horvitz-Thompson: d / n on the kept in-edges of a node with full in-degree d and n kept (n = d: 1)
        full = graph.in_degrees(nodes).to(edge_weight.dtype)  # (N_dst,)
        kept = block.in_degrees().to(edge_weight.dtype)  # (N_dst,)
        scale = torch.where(kept > 0, full / kept.clamp_min(1), torch.ones_like(full))
        _, dst = block.edges(order="eid")
        w = edge_weight[eid.to(edge_weight.device)] * scale.to(edge_weight.device)[dst.to(edge_weight.device)]
        blocks.insert(0, block)
        weights.insert(0, w)
        nodes = block.srcdata[dgl.NID]
    return SampledBlocks(blocks, weights, nodes, int(uniq.numel()), inverse)


def propagate_blocks(sampled: SampledBlocks, feat: Tensor, coef: Tensor, backend: str = "csr") -> Tensor:
    """``sum_k coef[k] E^(k)`` of the seeds from ``feat`` ``(N_0, D)`` = ``E^(0)`` of ``sampled.input_nodes``.

    Args:
        sampled: :func:`sample_blocks` output.
        feat: ``(N_0, D)`` input rows, in ``input_nodes`` order.
        coef: ``(K + 1,)`` layer combination coefficients.
        backend: ``csr`` (:func:`recsys_gnn.graph.spmm.propagate`, features on any device) or ``dgl``
            (``update_all`` on the blocks, moved to the features' device).

    Returns:
        ``(S,)``-ordered ``(S, D)`` rows: one per seed given to :func:`sample_blocks`, duplicates included.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    k = len(sampled.blocks)
    if coef.shape != (k + 1,):
        raise ValueError(f"coef must be (num_layers + 1,) = ({k + 1},), got {tuple(coef.shape)}")
    if feat.dim() != 2 or feat.shape[0] != sampled.input_nodes.numel():
        raise ValueError(f"feat must be (N_0={sampled.input_nodes.numel()}, D); got {tuple(feat.shape)}")
    n = sampled.n_seeds
    coef = coef.to(device=feat.device, dtype=feat.dtype)
    h = feat
    out = coef[0] * h[:n]  # (n, D)
    for layer, (block, w) in enumerate(zip(sampled.blocks, sampled.weights, strict=True)):
        w = w.to(device=feat.device, dtype=feat.dtype)
        if backend == "csr":
            h = propagate(block, h, w)  # (N_dst, D)
        else:
            block = block.to(feat.device)
            with block.local_scope():
                block.srcdata["_s_h"] = h
                block.edata["_s_w"] = w
                block.update_all(fn.u_mul_e("_s_h", "_s_w", "_s_m"), fn.sum("_s_m", "_s_h"))
                h = block.dstdata["_s_h"]
        out = out + coef[layer + 1] * h[:n]
    return out[sampled.inverse.to(feat.device)]


def node_rows(
    nodes: Tensor, n_users: int, user_rows: Callable[[Tensor], Tensor], item_rows: Callable[[Tensor], Tensor]
) -> Tensor:
    """``(R, D)`` rows of user+item graph nodes ``nodes`` ``(R,)`` (users ``0..U-1``, then items): users from
    ``user_rows(user ids)``, items from ``item_rows(item ids)`` (ids from 0), each called once."""
    is_user = nodes < n_users
    at_users, at_items = torch.nonzero(is_user).flatten(), torch.nonzero(~is_user).flatten()
    users, items = user_rows(nodes[at_users]), item_rows(nodes[at_items] - n_users)  # (n_u, D), (n_i, D)
    out = items.new_zeros(nodes.shape[0], items.shape[1])
    return out.index_copy(0, at_users, users).index_copy(0, at_items, items)


def sampled_lightgcn(
    graph: dgl.DGLGraph,
    seeds: Tensor,
    fanouts: Sequence[int | None],
    coef: Tensor,
    feat_of: Callable[[Tensor], Tensor],
    edge_weight: Tensor | None = None,
    backend: str = "csr",
) -> Tensor:
    """K-layer LightGCN output ``sum_k coef[k] E^(k)`` of ``seeds`` from neighbour samples (unbiased).

    Args:
        graph: homogeneous graph with the normalised weights in ``edata["w"]`` (or ``edge_weight``).
        seeds: ``(S,)`` node ids (e.g. a batch's users, positives and negatives; duplicates allowed).
        fanouts: K neighbours per node per layer, input layer first; -1 or None: all (exact propagation).
        coef: ``(K + 1,)`` layer combination coefficients.
        feat_of: ``node_ids (N_0,) -> (N_0, D)`` ``E^(0)`` rows of just those nodes (ids on the graph's
            device; the rows set the output's device and dtype).
        edge_weight: ``(E,)`` weights; None: ``graph.edata["w"]``.
        backend: see :func:`propagate_blocks`.

    Returns:
        ``(S, D)`` rows in the order of ``seeds``.
    """
    sampled = sample_blocks(graph, seeds, fanouts, edge_weight)
    return propagate_blocks(sampled, feat_of(sampled.input_nodes), coef, backend)
