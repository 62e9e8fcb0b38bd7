"""XSimGCL: LightGCN on id embeddings with noise-perturbed layers and a cross-layer contrastive loss."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from recsys_gnn.models.base import Batch
from recsys_gnn.models.baselines.lightgcn_id import LightGCNId
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.gnn.base import check_positive_int
from recsys_gnn.models.gnn.lightgcn import LightGCN
from recsys_gnn.models.losses import info_nce


def _check_float(name: str, value: float, low: float, strict: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite float {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


class XSimGCL(LightGCNId):
    """XSimGCL: LightGCN whose training pass adds random noise to every layer and contrasts two layers.

    Paper: Yu et al., "XSimGCL: Towards Extremely Simple Graph Contrastive Learning for Recommendation",
    IEEE TKDE 2023 (code: SELFRec ``model/graph/XSimGCL.py``).

    In training, with ``Â = D^-1/2 A D^-1/2`` of the user-item graph and ``E^(0)`` the id embeddings::

        E^(k) = Â E^(k-1) + Δ^(k),   Δ^(k) = eps * sign(E^(k)) ⊙ normalize(U(0, 1))   (row-wise L2 normalise)
        E     = mean(E^(1), ..., E^(K))
        loss  = rec(E) + L2(E^(0) rows) + lambda * [InfoNCE(E_u, E^(l*)_u) + InfoNCE(E_i, E^(l*)_i)]

    over the batch's unique users ``u`` and unique positive items ``i``, InfoNCE with cosine scores at
    temperature ``tau`` and the other nodes of the batch as negatives. At evaluation (``embed``, and ``loss``
    in eval mode) there is no noise: ``E = mean(Â E^(0), ..., Â^K E^(0))``.

    Differences from the paper: the recommendation loss is the project's configured one (``module.loss``: BPR
    as in the paper, or the sampled softmax) over the pipeline's negatives, and the L2 term is LightGCN's on the
    batch's layer-0 rows (as :class:`~recsys_gnn.models.baselines.lightgcn_id.LightGCNId`) rather than the
    authors' norm of the propagated rows; ids are initialised normally (``init_std``) instead of Xavier.
    As in the authors' code, ``E^(0)`` is left out of the layer mean, and the contrasted items are the batch's
    positives. The graph and everything else follow :class:`~recsys_gnn.models.baselines.lightgcn_id.LightGCNId`
    (it cannot score new items either).

    Args:
        context: run-time data (``train``, ``n_users``, ``n_items``, ``train_weight``).
        dim: embedding size D.
        num_layers: propagation steps K, >= 1.
        eps: noise magnitude (the L2 norm of each row's noise), >= 0; 0 turns the noise off.
        cl_weight: lambda, weight of the contrastive term, >= 0 (0: LightGCN without ``E^(0)`` in the mean).
        cl_temperature: tau > 0 of the InfoNCE.
        cl_layer: l*, the layer contrasted with the final embeddings, in 1..K.
        weight_decay_emb: weight of the L2 term on the batch's layer-0 embeddings, 0 disables.
        init_std: standard deviation of the normal initialisation of ``E^(0)``.
        use_weights: weight edges by the dataset's implicit weights before normalising.
        similarity: "dot" or "cosine" (output tables L2-normalised; use with ``module.loss=softmax``).
    """

    def __init__(
        self,
        context: ModelContext,
        dim: int = 64,
        num_layers: int = 2,
        eps: float = 0.2,
        cl_weight: float = 0.2,
        cl_temperature: float = 0.2,
        cl_layer: int = 1,
        weight_decay_emb: float = 1e-4,
        init_std: float = 0.1,
        use_weights: bool = False,
        similarity: str = "dot",
    ) -> None:
        super().__init__(
            context,
            dim=dim,
            num_layers=num_layers,
            weight_decay_emb=weight_decay_emb,
            init_std=init_std,
            use_weights=use_weights,
            similarity=similarity,
            backend="csr",
        )
        self.num_layers = int(num_layers)
        self.eps = _check_float("eps", eps, 0.0, strict=False)
        self.cl_weight = _check_float("cl_weight", cl_weight, 0.0, strict=False)
        self.cl_temperature = _check_float("cl_temperature", cl_temperature, 0.0, strict=True)
        self.cl_layer = check_positive_int("cl_layer", cl_layer)
        if self.cl_layer > self.num_layers:
            raise ValueError(f"cl_layer must be in 1..num_layers={self.num_layers}, got {cl_layer!r}")
        # embed() (inherited) propagates without noise and averages layers 1..K only, as the paper does
        self.propagate = LightGCN(self.dim, self.num_layers, layer_weights=[0.0] + [1.0] * self.num_layers)

    def layers(self, ego: Tensor, perturbed: bool) -> tuple[Tensor, Tensor]:
        """``(U + I, D)`` final embeddings (mean of layers 1..K) and layer ``cl_layer``'s, from ``ego`` ``(U + I, D)``.

        With ``perturbed`` every layer gets its noise ``Δ^(k)`` (absolute ``eps``, as in the paper) before it is
        propagated further and averaged (:meth:`~recsys_gnn.models.gnn.lightgcn.LightGCN.perturbed`).
        """
        eps = self.eps if perturbed else 0.0
        return self.propagate.perturbed(self.graph, ego, eps, self.cl_layer, relative=False)

    def contrastive_loss(self, final: Tensor, view: Tensor, batch: Batch) -> Tensor:
        """``InfoNCE`` of final vs layer-``l*`` rows over the batch's unique users + that over its unique positives."""
        users = torch.unique(batch["user"])
        items = torch.unique(batch["pos"]) + self.n_users
        user_cl = info_nce(final[users], view[users], self.cl_temperature)
        item_cl = info_nce(final[items], view[items], self.cl_temperature)
        return user_cl + item_cl

    def loss(
        self, batch: Batch, kind: str = "bpr", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Any]]:
        """Recommendation loss (+ L2) on the perturbed final table + ``cl_weight`` times the contrastive term.

        The extra dict holds the (unweighted) contrastive term as ``cl_loss``.
        """
        ego = torch.cat([self.user_emb.weight, self.item_emb.weight], 0)  # (U + I, D)
        final, view = self.layers(ego, perturbed=self.training)
        main = self.table_loss(final, ego, batch, kind, temperature)
        if self.cl_weight <= 0:
            return main, {}
        cl = self.contrastive_loss(final, view, batch)
        return main + self.cl_weight * cl, {"cl_loss": cl.detach()}

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, eps={self.eps}, cl_weight={self.cl_weight}, "
            f"cl_temperature={self.cl_temperature}, cl_layer={self.cl_layer}"
        )
