"""Classic graph attention (GAT) compressor built on DGL's GATConv (``gnn=gat_classic``)."""

from __future__ import annotations

import dgl
import torch
import torch.nn.functional as F
from dgl.nn.pytorch import GATConv
from torch import nn

from recsys_gnn.models.gnn.base import (
    GNNStack,
    check_non_negative,
    check_positive_int,
    check_probability,
)


class ClassicGAT(GNNStack):
    """Multi-head graph attention with per-layer transforms, heads concatenated back to ``dim`` (the former
    ``gnn=gat``; ``conf/gnn/gat_classic.yaml``). Kept to reproduce older results: it scores about half of
    LightGCN as a compressor (experiments/gnn_variants).

    Paper: Veličković et al., "Graph Attention Networks", ICLR 2018.

    Update rule per layer and head h (``H`` heads of size ``D / H``)::

        e_ij = LeakyReLU(a_h^T [W_h x_i || W_h x_j]),   α_ij = softmax_{j in N(i)}(e_ij)
        x_i' = ||_h ( sum_{j in N(i)} α_ij w_ij W_h x_j ) + [x_i if residual] + b
        ELU between layers, not after the last

    Differences from the paper: an edge weight ``w_ij`` passed to ``forward`` (or the graph's
    ``D^-1/2 A D^-1/2`` with ``use_edge_weight=True``) multiplies the attention after the softmax, as DGL's
    ``GATConv`` does with ``edge_weight``; by default no weight is used (``w_ij = 1``, the paper), because the
    softmax already normalises and a second normalisation shrinks every message towards zero; the last layer
    concatenates heads instead of averaging them, so the output keeps ``dim``; with ``residual`` each layer adds
    its input (identity, as in-size = out-size), so nodes without in-edges keep their features instead of only
    the bias.

    Args:
        dim: feature size D, divisible by ``num_heads``.
        num_layers: number of layers K, >= 1.
        num_heads: attention heads H per layer, >= 1.
        dropout: dropout on each layer's input features, in [0, 1).
        attn_dropout: dropout on attention coefficients, in [0, 1).
        residual: add each layer's input to its output.
        negative_slope: LeakyReLU slope of the attention logits, finite and >= 0.
        use_edge_weight: use the graph's ``edata["w"]`` when ``forward`` gets no ``edge_weight``.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        residual: bool = True,
        negative_slope: float = 0.2,
        use_edge_weight: bool = False,
    ) -> None:
        super().__init__(dim, num_layers)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.use_edge_weight = bool(use_edge_weight)
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dropout = check_probability("dropout", dropout)
        self.attn_dropout = check_probability("attn_dropout", attn_dropout)
        self.residual = bool(residual)
        self.negative_slope = check_non_negative("negative_slope", negative_slope)
        self.convs = nn.ModuleList(
            GATConv(
                dim,
                dim // num_heads,
                num_heads,
                feat_drop=self.dropout,
                attn_drop=self.attn_dropout,
                negative_slope=self.negative_slope,
                residual=self.residual,
                allow_zero_in_degree=True,  # isolated (new) items are expected; the residual keeps them
            )
            for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every GATConv (DGL's Xavier-normal scheme, zero bias)."""
        for conv in self.convs:
            conv.reset_parameters()

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the K attention layers; ``feat`` (N, D) -> (N, D)."""
        if edge_weight is None and not self.use_edge_weight:
            # attention alone (the paper): weight 1 on every edge (resolve_edge_weight still checks feat)
            edge_weight = torch.ones(graph.num_edges(), dtype=feat.dtype, device=feat.device)
        weight = self.resolve_edge_weight(graph, feat, edge_weight)
        h = feat
        for k, conv in enumerate(self.convs):
            # GATConv writes to the graph only inside its own local_scope
            h = conv(graph, h, edge_weight=weight).reshape(h.shape[0], self.dim)  # (N, H, D/H) -> (N, D)
            if k < self.num_layers - 1:
                h = F.elu(h)
        return h

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_layers={self.num_layers}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"attn_dropout={self.attn_dropout}, residual={self.residual}, negative_slope={self.negative_slope}, "
            f"use_edge_weight={self.use_edge_weight}"
        )
