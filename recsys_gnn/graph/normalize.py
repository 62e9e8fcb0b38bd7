"""Symmetric degree normalisation D^-1/2 A D^-1/2 of an edge list, shared by every graph builder."""

from __future__ import annotations

import numpy as np
import torch


def sym_norm_weights(
    src: torch.Tensor | np.ndarray,
    dst: torch.Tensor | np.ndarray,
    num_nodes: int,
    w: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Normalised weight ``w_e / sqrt(d_out(src_e) * d_in(dst_e))`` of every edge.

    Degrees are weighted (sum of ``w`` over a node's edges; 1 per edge when ``w`` is None) and are taken
    from the edge list as given, so self loops must already be in it to be counted. On a symmetric graph
    in- and out-degree coincide and this is exactly ``D^-1/2 A D^-1/2``.

    Args:
        src: ``(E,)`` source node ids.
        dst: ``(E,)`` destination node ids.
        num_nodes: number of nodes N; every id must be in ``[0, N)``.
        w: ``(E,)`` non-negative raw edge weights, or None for all ones.

    Returns:
        ``(E,)`` float32 normalised weights. An edge whose endpoint has degree 0 (only possible when its own
        weight is 0) gets 0 instead of NaN.

    Raises:
        ValueError: on mismatched lengths, ids out of range, or negative/non-finite weights.
    """
    src_t = torch.as_tensor(np.asarray(src) if not isinstance(src, torch.Tensor) else src).long()
    dst_t = torch.as_tensor(np.asarray(dst) if not isinstance(dst, torch.Tensor) else dst).long()
    if src_t.ndim != 1 or dst_t.ndim != 1 or src_t.shape != dst_t.shape:
        raise ValueError(
            f"src and dst must be 1-D of equal length, got {tuple(src_t.shape)} and {tuple(dst_t.shape)}"
        )
    if num_nodes < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    n_edges = src_t.shape[0]
    if n_edges and (min(src_t.min(), dst_t.min()) < 0 or max(src_t.max(), dst_t.max()) >= num_nodes):
        raise ValueError(f"node ids must lie in [0, {num_nodes})")
    if w is None:
        w_t = torch.ones(n_edges, dtype=torch.float64)
    else:
        w_t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).to(torch.float64)
        if w_t.shape != (n_edges,):
            raise ValueError(f"w must have shape ({n_edges},), got {tuple(w_t.shape)}")
        if n_edges and (not torch.isfinite(w_t).all() or (w_t < 0).any()):
            raise ValueError("w must be finite and >= 0")
    # float64 accumulation: degrees of hub nodes sum millions of weights
    deg_out = torch.zeros(num_nodes, dtype=torch.float64).index_add_(0, src_t, w_t)
    deg_in = torch.zeros(num_nodes, dtype=torch.float64).index_add_(0, dst_t, w_t)
    denom = torch.sqrt(deg_out[src_t] * deg_in[dst_t])
    out = torch.where(denom > 0, w_t / denom.clamp_min(1e-300), torch.zeros_like(w_t))
    return out.to(torch.float32)
