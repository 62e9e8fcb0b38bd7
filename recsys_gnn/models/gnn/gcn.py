"""Residual graph convolution (GCN) compressor."""

from __future__ import annotations

import math
import numbers

import dgl
import dgl.function as fn
import torch
from torch import nn

from recsys_gnn.graph.spmm import BACKENDS, propagate
from recsys_gnn.models.gnn.base import GNNStack, check_choice, check_probability

ACTIVATIONS = ("none", "relu", "tanh")


class GCN(GNNStack):
    """Graph convolution with a residual connection around every layer.

    Paper: Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks", ICLR 2017.

    Update rule, with ``Â`` the edge weights (by default ``D^-1/2 A D^-1/2`` from the graph builder)::

        H^(k+1) = H^(k) + a_k * act(Â dropout(H^(k)) W^(k)),   W^(k) in R^{D x D}

    Differences from the paper: the identity path ``H^(k)`` replaces the paper's renormalised self loop as
    the way a node keeps its own features (self loops are the graph builder's choice), so a node with no
    incoming edges keeps its input exactly; the layer output is added to its input instead of replacing
    it; no bias; the activation is optional and the scale ``a_k`` can be learned per layer.

    Args:
        dim: feature size D.
        num_layers: number of layers K, >= 1.
        alpha: scale of the propagated term, finite and > 0 (initial value when learned).
        dropout: dropout on each layer's input to ``W``, in [0, 1).
        activation: one of ``none``, ``relu``, ``tanh``.
        learn_alpha: learn one ``a_k`` per layer instead of fixing it.
        backend: ``csr`` (cached torch CSR product, :mod:`recsys_gnn.graph.spmm`; runs on any torch device) or
            ``dgl`` (``update_all``); same numbers to float tolerance.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        alpha: float = 1.0,
        dropout: float = 0.0,
        activation: str = "none",
        learn_alpha: bool = False,
        backend: str = "csr",
    ) -> None:
        super().__init__(dim, num_layers)
        if not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite float > 0, got {alpha!r}")
        self.alpha_init = float(alpha)
        self.dropout_p = check_probability("dropout", dropout)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.learn_alpha = bool(learn_alpha)
        self.backend = check_choice("backend", backend, BACKENDS)
        self.linears = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(num_layers))
        if self.learn_alpha:
            self.alpha = nn.Parameter(torch.empty(num_layers))
        else:
            self.register_buffer("alpha", torch.empty(num_layers))
        self.dropout = nn.Dropout(self.dropout_p)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-initialise every ``W^(k)`` and set every ``a_k`` to ``alpha``."""
        for lin in self.linears:
            nn.init.xavier_uniform_(lin.weight)
        with torch.no_grad():
            self.alpha.fill_(self.alpha_init)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(x)
        if self.activation == "tanh":
            return torch.tanh(x)
        return x

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the K residual layers; ``feat`` (N, D) -> (N, D)."""
        weight = self.resolve_edge_weight(graph, feat, edge_weight)
        h = feat
        if self.backend == "csr":
            for k, lin in enumerate(self.linears):
                h = h + self.alpha[k] * self._act(propagate(graph, lin(self.dropout(h)), weight))
            return h
        with graph.local_scope():
            graph.edata["_gcn_w"] = weight
            for k, lin in enumerate(self.linears):
                # W before propagation: same cost at D x D, and keeps the message a plain weighted sum
                graph.ndata["_gcn_h"] = lin(self.dropout(h))
                graph.update_all(fn.u_mul_e("_gcn_h", "_gcn_w", "_gcn_m"), fn.sum("_gcn_m", "_gcn_agg"))
                h = h + self.alpha[k] * self._act(graph.ndata["_gcn_agg"])
        return h

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_layers={self.num_layers}, alpha={self.alpha_init}, dropout={self.dropout_p}, "
            f"activation={self.activation!r}, learn_alpha={self.learn_alpha}, backend={self.backend!r}"
        )
