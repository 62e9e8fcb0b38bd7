"""Graph attention compressor: LightGCN-style propagation with attention-weighted edges."""

from __future__ import annotations

import math
import numbers

import dgl
import dgl.ops
import torch
import torch.nn.functional as F
from dgl.nn.functional import edge_softmax
from torch import nn

from recsys_gnn.graph.spmm import propagate
from recsys_gnn.models.gnn.base import (
    GNNStack,
    check_choice,
    check_non_negative,
    check_positive_int,
    check_probability,
)

ATTENTIONS = ("dot", "additive")

# log of a zero edge weight (an edge dropped for this step): finite, so that a node whose edges are all
# dropped gets a finite softmax (multiplied by its zero weight sum afterwards) instead of NaN
_LOG_ZERO = -1e4


class GAT(GNNStack):
    """Attention-weighted LightGCN: weightless propagation whose edge weights are re-distributed by attention.

    Papers: Veličković et al., "Graph Attention Networks", ICLR 2018 (attention over the neighbours);
    He et al., "LightGCN", SIGIR 2020 (no per-layer transform or non-linearity, layer averaging).

    Update rule per layer k and head h (``H`` heads, each owning ``D / H`` of the features), with ``Â`` the
    edge weights (by default ``D^-1/2 A D^-1/2`` from the graph builder) and ``s_i = sum_j Â_ij``::

        z_ij  = cos(h_i, h_j) / T                               (attention="dot", no parameters)
              | LeakyReLU(a_k^T [h_j || h_i]) / T               (attention="additive", a_k in R^{2D/H})
        α_ij  = s_i * softmax_{j in N(i)}(z_ij + log Â_ij)       (prior=True: = Â_ij when z is constant)
              | softmax_{j in N(i)}(z_ij)                       (prior=False: an attention-weighted mean)
        h_i^(k+1) = sum_{j in N(i)} α_ij h_j^(k)
        output    = mean(h^(0), ..., h^(K))

    Differences from the paper (GAT): no per-layer weight matrix ``W``, no ELU between layers, no bias and no
    residual - the per-layer transform and non-linearity that LightGCN found to hurt collaborative filtering;
    instead each layer smooths the features with attention weights and the layers are averaged. The
    attention acts on the normalised LightGCN weights (``prior``): it moves a node's total weight ``s_i`` between
    its neighbours, so with uniform attention (``T`` large, or ``a = 0`` as the additive attention is
    initialised) the module is exactly LightGCN; the attention only tilts those weights. An edge weight of 0 removes the
    edge (the compressor's ``cold_dropout``). Nodes without incoming edges keep ``h^(0) / (K + 1)``, as in
    LightGCN: their own features, scaled. The attention is recomputed at each layer from that layer's features.

    Args:
        dim: feature size D, divisible by ``num_heads``.
        num_layers: propagation steps K, >= 1.
        attention: ``dot`` (cosine of the two endpoints over T; no parameters) or ``additive`` (GAT's
            ``a^T [h_j || h_i]`` through a LeakyReLU, one ``a`` per layer and head, zero-initialised).
        temperature: T > 0; the attention logits are divided by it (large T -> uniform attention -> LightGCN).
        num_heads: H >= 1 heads, each with its own attention over its ``D / H`` features.
        prior: keep the normalised edge weights as the attention's prior (see above); False: a plain softmax
            over the neighbours (the edge weights then only mark dropped edges, weight 0).
        attn_dropout: dropout on the attention weights ``α``, in [0, 1).
        negative_slope: LeakyReLU slope of the additive attention, finite and >= 0.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        attention: str = "dot",
        temperature: float = 1.0,
        num_heads: int = 1,
        prior: bool = True,
        attn_dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(dim, num_layers)
        self.attention = check_choice("attention", attention, ATTENTIONS)
        if not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.num_heads = check_positive_int("num_heads", num_heads)
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.prior = bool(prior)
        self.attn_dropout = check_probability("attn_dropout", attn_dropout)
        self.negative_slope = check_non_negative("negative_slope", negative_slope)
        head_dim = dim // num_heads
        if self.attention == "additive":
            self.attn_src = nn.Parameter(torch.empty(num_layers, num_heads, head_dim))
            self.attn_dst = nn.Parameter(torch.empty(num_layers, num_heads, head_dim))
        else:
            self.register_parameter("attn_src", None)
            self.register_parameter("attn_dst", None)
        self.drop = nn.Dropout(self.attn_dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the additive attention vectors: training starts from uniform attention, i.e. LightGCN."""
        if self.attn_src is not None:
            nn.init.zeros_(self.attn_src)
            nn.init.zeros_(self.attn_dst)

    def logits(self, graph: dgl.DGLGraph, h: torch.Tensor, layer: int) -> torch.Tensor:
        """``(E, H)`` attention logits ``z`` of layer ``layer`` from its features ``h`` ``(N, H, D/H)``."""
        if self.attention == "dot":
            hn = F.normalize(h, dim=-1)  # (N, H, D/H)
            z = dgl.ops.u_dot_v(graph, hn, hn).squeeze(-1)  # (E, H)
        else:
            el = (h * self.attn_src[layer]).sum(-1)  # (N, H): the source's share of a^T [h_j || h_i]
            er = (h * self.attn_dst[layer]).sum(-1)  # (N, H)
            z = F.leaky_relu(dgl.ops.u_add_v(graph, el, er), self.negative_slope)  # (E, H)
        return z / self.temperature

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Propagate ``feat`` (N, D) K times with attention weights; return the mean of all K + 1 layers (N, D)."""
        weight = self.resolve_edge_weight(graph, feat, edge_weight)  # (E,)
        if (weight < 0).any():
            raise ValueError("edge_weight must be >= 0 (0 removes an edge)")
        n, heads = feat.shape[0], self.num_heads
        present = weight > 0  # (E,)
        _, dst = graph.edges()
        if self.prior:
            log_w = torch.where(present, weight.clamp_min(torch.finfo(weight.dtype).tiny).log(), _LOG_ZERO)
            scale = weight.new_zeros(n).index_add_(0, dst, weight)  # (N,) s_i, total incoming weight
            edge_scale = scale[dst] * present  # (E,) s_dst; 0 on removed edges
        else:
            log_w = torch.where(present, 0.0, _LOG_ZERO).to(weight.dtype)
            edge_scale = present.to(weight.dtype)  # (E,)
        h = feat
        out = feat
        for k in range(self.num_layers):
            hh = h.view(n, heads, -1)  # (N, H, D/H)
            z = self.logits(graph, hh, k) + log_w[:, None]  # (E, H)
            alpha = self.drop(edge_softmax(graph, z) * edge_scale[:, None])  # (E, H)
            if heads == 1:
                h = propagate(graph, h, alpha[:, 0])  # (N, D), cached CSR product
            else:
                h = torch.cat([propagate(graph, hh[:, i], alpha[:, i]) for i in range(heads)], -1)  # (N, D)
            out = out + h
        return out / (self.num_layers + 1)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_layers={self.num_layers}, attention={self.attention!r}, "
            f"temperature={self.temperature}, num_heads={self.num_heads}, prior={self.prior}, "
            f"attn_dropout={self.attn_dropout}, negative_slope={self.negative_slope}"
        )
