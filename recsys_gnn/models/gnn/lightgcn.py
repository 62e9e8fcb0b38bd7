"""LightGCN propagation compressor (no weights, no non-linearity)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import dgl
import dgl.function as fn
import torch
import torch.nn.functional as F

from recsys_gnn.graph.spmm import BACKENDS, layer_combination, propagate
from recsys_gnn.models.gnn.base import GNNStack, check_choice


class LightGCN(GNNStack):
    """Linear neighbourhood smoothing with a layer combination.

    Paper: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
    SIGIR 2020.

    Update rule, with ``Â`` the edge weights (by default ``D^-1/2 A D^-1/2``)::

        E^(k+1) = Â E^(k),   output = sum_k c_k E^(k)  for k = 0..K,   c_k = 1 / (K + 1) by default

    Differences from the paper: ``E^(0)`` is whatever features are passed in (here usually projected text
    embeddings) rather than a free ID embedding table, so the module itself has no parameters and training
    happens upstream; ``layer_weights`` are rescaled to sum to 1 so any choice stays a weighted mean.

    Args:
        dim: feature size D.
        num_layers: propagation steps K, >= 1.
        layer_weights: K + 1 non-negative weights of ``E^(0)..E^(K)`` (not all 0), or None for the mean.
        backend: ``csr`` (cached torch CSR product, :mod:`recsys_gnn.graph.spmm`; runs on any torch device) or
            ``dgl`` (``update_all``); same numbers to float tolerance.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        layer_weights: Sequence[float] | None = None,
        backend: str = "csr",
    ) -> None:
        super().__init__(dim, num_layers)
        self.backend = check_choice("backend", backend, BACKENDS)
        if layer_weights is not None:
            layer_weights = [float(c) for c in layer_weights]
            if len(layer_weights) != num_layers + 1:
                raise ValueError(
                    f"layer_weights must have num_layers + 1 = {num_layers + 1} entries, got {len(layer_weights)}"
                )
            if any(not math.isfinite(c) or c < 0 for c in layer_weights) or sum(layer_weights) <= 0:
                raise ValueError(f"layer_weights must be finite, >= 0 and not all 0, got {layer_weights}")
        self.layer_weights = layer_weights
        self.register_buffer("coef", torch.empty(num_layers + 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the layer combination coefficients (there are no learnable parameters)."""
        raw = (
            torch.ones(self.num_layers + 1)
            if self.layer_weights is None
            else torch.tensor(self.layer_weights)
        )
        with torch.no_grad():
            self.coef.copy_(raw / raw.sum())

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Smooth ``feat`` (N, D) K times and return the weighted mean of all K + 1 layers, (N, D)."""
        weight = self.resolve_edge_weight(graph, feat, edge_weight)
        if self.backend == "csr":
            return layer_combination(graph, feat, weight, self.coef)
        coef = self.coef.to(feat.dtype)
        out = coef[0] * feat
        h = feat
        with graph.local_scope():
            graph.edata["_lgcn_w"] = weight
            for k in range(self.num_layers):
                graph.ndata["_lgcn_h"] = h
                graph.update_all(fn.u_mul_e("_lgcn_h", "_lgcn_w", "_lgcn_m"), fn.sum("_lgcn_m", "_lgcn_h"))
                h = graph.ndata["_lgcn_h"]
                out = out + coef[k + 1] * h
        return out

    def perturbed(
        self,
        graph: dgl.DGLGraph,
        feat: torch.Tensor,
        eps: float,
        view_layer: int,
        edge_weight: torch.Tensor | None = None,
        relative: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """XSimGCL's training pass: ``(N, D)`` layer combination and ``(N, D)`` layer ``view_layer`` (1..K), where
        every propagated layer gets noise before it goes on, ``E^(k) = Â E^(k-1) + eps * ||row|| * sign(E^(k)) ⊙ r``
        (``r`` a row-normalised uniform draw).

        With ``relative`` (the compressor's choice) the noise scales with each row's norm (detached): the
        compressor's rows have no fixed scale (an MLP of the text, scored by cosine), so absolute noise could be
        outgrown; ``relative=False`` is the paper's absolute ``eps`` (``model=xsimgcl``). Always the torch CSR
        product, whatever ``backend`` is.
        """
        if not 1 <= view_layer <= self.num_layers:
            raise ValueError(f"view_layer must be in 1..num_layers={self.num_layers}, got {view_layer!r}")
        weight = self.resolve_edge_weight(graph, feat, edge_weight)
        coef = self.coef.to(feat.dtype)
        out, h, view = coef[0] * feat, feat, feat
        for k in range(1, self.num_layers + 1):
            h = propagate(graph, h, weight)  # (N, D)
            if eps > 0:
                scale = eps * h.detach().norm(dim=-1, keepdim=True) if relative else eps  # (N, 1) or scalar
                h = h + torch.sign(h) * F.normalize(torch.rand_like(h), dim=-1) * scale
            out = out + coef[k] * h
            if k == view_layer:
                view = h
        return out, view

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_layers={self.num_layers}, layer_weights={self.layer_weights}, backend={self.backend!r}"
