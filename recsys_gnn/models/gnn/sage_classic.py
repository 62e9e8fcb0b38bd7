"""Classic GraphSAGE compressor built on DGL's SAGEConv (``gnn=sage_classic``)."""

from __future__ import annotations

import dgl
import torch
import torch.nn.functional as F
from dgl.nn.pytorch import SAGEConv
from torch import nn

from recsys_gnn.models.gnn.base import GNNStack, check_choice, check_probability

AGGREGATORS = ("mean", "pool", "gcn", "lstm")


class ClassicSAGE(GNNStack):
    """GraphSAGE with per-layer transforms and a residual connection around every layer (the former
    ``gnn=sage``; ``conf/gnn/sage_classic.yaml``). Kept to reproduce older results (experiments/grid).

    Paper: Hamilton, Ying & Leskovec, "Inductive Representation Learning on Large Graphs", NeurIPS 2017.

    Update rule, ``AGG`` one of mean / max-pool / gcn / lstm over weighted messages ``w_ij x_j``::

        m_i = W_self x_i + W_neigh AGG({w_ij x_j : j in N(i)}) + b      ("gcn": W (sum_j w_ij x_j + x_i) / (d_i + 1) + b)
        x_i' = x_i + ReLU(m_i)   between layers,   x_i' = x_i + m_i   after the last

    Differences from the paper: full-graph propagation instead of sampled neighbourhoods; no
    ℓ2-normalisation of the output; a residual sum instead of the paper's concatenation with the self
    features (SAGEConv already adds ``W_self x_i``), so the output keeps ``dim`` and isolated nodes keep their
    features; messages are scaled by the edge weight (by default ``D^-1/2 A D^-1/2``). DGL 2.1's SAGEConv
    applies ``edge_weight`` to the messages of all four aggregators, so it is always passed.

    Args:
        dim: feature size D.
        num_layers: number of layers K, >= 1.
        aggregator: one of ``mean``, ``pool``, ``gcn``, ``lstm``.
        dropout: dropout on each layer's input features, in [0, 1).
    """

    def __init__(self, dim: int, num_layers: int = 2, aggregator: str = "mean", dropout: float = 0.0) -> None:
        super().__init__(dim, num_layers)
        self.aggregator = check_choice("aggregator", aggregator, AGGREGATORS)
        self.dropout = check_probability("dropout", dropout)
        self.convs = nn.ModuleList(
            SAGEConv(dim, dim, self.aggregator, feat_drop=self.dropout) for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every SAGEConv (DGL's Xavier-uniform scheme)."""
        for conv in self.convs:
            conv.reset_parameters()

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the K residual SAGE layers; ``feat`` (N, D) -> (N, D)."""
        weight = self.resolve_edge_weight(graph, feat, edge_weight)
        h = feat
        for k, conv in enumerate(self.convs):
            # SAGEConv writes to the graph only inside its own local_scope
            m = conv(graph, h, edge_weight=weight)
            h = h + (F.relu(m) if k < self.num_layers - 1 else m)
        return h

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_layers={self.num_layers}, aggregator={self.aggregator!r}, "
            f"dropout={self.dropout}"
        )
