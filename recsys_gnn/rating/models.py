"""Rating predictors: the compressor + :class:`RatingHead`, and the classic baselines on the same folds.

Every predictor maps ``(users (B,), items (B,))`` to a head output and turns that into ``(ratings, classes)``;
:class:`RatingModule` trains and evaluates them all the same way. Baselines are regression models (MSE).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.models.base import Recommender
from recsys_gnn.rating.head import RatingHead

log = logging.getLogger(__name__)


class RatingPredictor(nn.Module):
    """Base class of rating predictors.

    ``trainable = False`` marks models fitted entirely in :meth:`fit` (no gradient steps).

    Args:
        scale: ``(lo, hi)`` rating scale; predictions are clipped into it.
    """

    trainable: bool = True
    objective: str = "regression"

    def __init__(self, scale: Sequence[float] = (1, 5)) -> None:
        super().__init__()
        self.scale = (float(scale[0]), float(scale[1]))

    def fit(self, users: Tensor, items: Tensor, ratings: Tensor) -> None:
        """Fit the closed-form parts from the ``(M,)`` training triples (before any gradient step)."""

    def precompute(self) -> Any:
        """State shared by every evaluation batch (e.g. the encoder's embeddings), or None."""
        return None

    def forward(self, users: Tensor, items: Tensor, state: Any = None) -> Tensor:
        """``users, items (B,)`` -> head output (``(B,)`` ratings for regression, ``(B, C)`` logits)."""
        raise NotImplementedError

    def loss(self, users: Tensor, items: Tensor, ratings: Tensor) -> Tensor:
        """Training loss of a batch of ``(B,)`` triples: MSE (+ the model's regulariser)."""
        return F.mse_loss(self(users, items), ratings.float())

    def predict(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Head output -> ``(ratings (B,), classes (B,))``: clipped into the scale, then rounded half-up."""
        rating = out.clamp(*self.scale)
        return rating, torch.floor(rating + 0.5).long()


class RatingModel(RatingPredictor):
    """A :class:`~recsys_gnn.models.base.Recommender` (e.g. the GNN compressor) with a :class:`RatingHead`.

    Each training step recomputes ``encoder_model.embed()`` (so the projection and GNN are trained end to end
    through the head); evaluation computes it once per epoch (:meth:`precompute`).

    Args:
        encoder_model: gives ``embed() -> (U, D), (I, D)``.
        head: the rating head (its ``dim`` must be D).
    """

    def __init__(self, encoder_model: Recommender, head: RatingHead) -> None:
        super().__init__(scale=head.scale)
        self.encoder_model = encoder_model
        self.head = head
        self.objective = head.objective

    def fit(self, users: Tensor, items: Tensor, ratings: Tensor) -> None:
        if self.objective == "regression":  # start the regression output at the training mean
            nn.init.constant_(self.head.mlp[-1].bias, float(ratings.float().mean()))

    def precompute(self) -> tuple[Tensor, Tensor]:
        return self.encoder_model.embed()

    def forward(self, users: Tensor, items: Tensor, state: Any = None) -> Tensor:
        user_emb, item_emb = state if state is not None else self.encoder_model.embed()
        return self.head(user_emb[users], item_emb[items])

    def loss(self, users: Tensor, items: Tensor, ratings: Tensor) -> Tensor:
        return self.head.loss(self(users, items), ratings)

    def predict(self, out: Tensor) -> tuple[Tensor, Tensor]:
        return self.head.predict(out)


class GlobalMean(RatingPredictor):
    """Predicts the mean training rating for every pair."""

    trainable = False

    def __init__(self, scale: Sequence[float] = (1, 5)) -> None:
        super().__init__(scale)
        self.register_buffer("mu", torch.zeros(()))

    def fit(self, users: Tensor, items: Tensor, ratings: Tensor) -> None:
        self.mu.fill_(float(ratings.double().mean()))
        log.info("global mean rating %.4f", float(self.mu))

    def forward(self, users: Tensor, items: Tensor, state: Any = None) -> Tensor:
        return self.mu.expand(users.shape[0]).clone()


class UserItemBiases(RatingPredictor):
    """``mu + b_u + b_i`` (Koren's baseline predictor) fitted by regularised least squares.

    Minimises ``sum (r - mu - b_u - b_i)^2 + reg_user * sum b_u^2 + reg_item * sum b_i^2`` with ``mu`` the
    training mean, by exact block coordinate descent (each block update solves its least-squares problem in
    closed form, so the objective decreases monotonically to the unique minimum). Users/items without
    training ratings keep a zero bias.

    Args:
        n_users, n_items: U and I.
        reg_user, reg_item: L2 weights (Surprise's ``BaselineOnly`` ALS defaults: 15 and 10).
        max_iter: coordinate-descent sweeps at most.
        tol: stop when no bias moves more than this in a sweep.
        scale: rating scale.
    """

    trainable = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        reg_user: float = 15.0,
        reg_item: float = 10.0,
        max_iter: int = 100,
        tol: float = 1e-6,
        scale: Sequence[float] = (1, 5),
    ) -> None:
        super().__init__(scale)
        if reg_user < 0 or reg_item < 0:
            raise ConfigError(
                f"bias regularisation must be >= 0; got reg_user={reg_user}, reg_item={reg_item}"
            )
        self.reg_user, self.reg_item = float(reg_user), float(reg_item)
        self.max_iter, self.tol = int(max_iter), float(tol)
        self.register_buffer("mu", torch.zeros(()))
        self.register_buffer("user_bias", torch.zeros(n_users))
        self.register_buffer("item_bias", torch.zeros(n_items))

    def fit(self, users: Tensor, items: Tensor, ratings: Tensor) -> None:
        r = ratings.double()
        mu = r.mean()
        bu = torch.zeros(len(self.user_bias), dtype=torch.float64)
        bi = torch.zeros(len(self.item_bias), dtype=torch.float64)
        n_u = torch.bincount(users, minlength=len(bu)).double()
        n_i = torch.bincount(items, minlength=len(bi)).double()
        den_u = (self.reg_user + n_u).clamp(min=1e-12)
        den_i = (self.reg_item + n_i).clamp(min=1e-12)
        sweeps, delta = 0, float("inf")
        while sweeps < self.max_iter and delta >= self.tol:
            new_bu = torch.zeros_like(bu).index_add_(0, users, r - mu - bi[items]) / den_u
            new_bi = torch.zeros_like(bi).index_add_(0, items, r - mu - new_bu[users]) / den_i
            delta = max(float((new_bu - bu).abs().max()), float((new_bi - bi).abs().max()))
            bu, bi, sweeps = new_bu, new_bi, sweeps + 1
        log.info("user/item biases: %d sweeps, last change %.2e", sweeps, delta)
        self.mu.fill_(float(mu))
        self.user_bias.copy_(bu.float())
        self.item_bias.copy_(bi.float())

    def forward(self, users: Tensor, items: Tensor, state: Any = None) -> Tensor:
        return self.mu + self.user_bias[users] + self.item_bias[items]


class BiasedMF(RatingPredictor):
    """SVD-style biased matrix factorisation ``mu + b_u + b_i + p_u . q_i`` trained with MSE + L2.

    The L2 term is applied to the batch's rows, ``reg * mean_b(b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)``, which is
    the per-rating regulariser of Funk/Koren SGD (frequent users/items are regularised more).

    Args:
        n_users, n_items: U and I.
        dim: number of factors.
        reg: L2 weight.
        init_std: std of the normal init of the factors (biases start at 0).
        scale: rating scale.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 100,
        reg: float = 0.1,
        init_std: float = 0.1,
        scale: Sequence[float] = (1, 5),
    ) -> None:
        super().__init__(scale)
        if dim < 1 or reg < 0:
            raise ConfigError(f"BiasedMF needs dim >= 1 and reg >= 0; got dim={dim}, reg={reg}")
        self.reg = float(reg)
        self.register_buffer("mu", torch.zeros(()))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.item_factors.weight, std=init_std)

    def fit(self, users: Tensor, items: Tensor, ratings: Tensor) -> None:
        self.mu.fill_(float(ratings.double().mean()))

    def forward(self, users: Tensor, items: Tensor, state: Any = None) -> Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        return self.mu + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + dot

    def loss(self, users: Tensor, items: Tensor, ratings: Tensor) -> Tensor:
        mse = F.mse_loss(self(users, items), ratings.float())
        l2 = (
            self.user_bias(users).pow(2).sum(-1)
            + self.item_bias(items).pow(2).sum(-1)
            + self.user_factors(users).pow(2).sum(-1)
            + self.item_factors(items).pow(2).sum(-1)
        ).mean()
        return mse + self.reg * l2
