"""Non-personalised news baselines on impression logs: smoothed click-through rate, and random scores."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.models.base import Recommender
from recsys_gnn.models.context import ModelContext

log = logging.getLogger(__name__)


def smoothed_ctr(
    impressions: list[dict], n_items: int, prior: float = 10.0, split: str = "train"
) -> tuple[Tensor, float]:
    """``(I,)`` float32 smoothed CTR of each item over the ``split`` impressions, and the global CTR.

    ``ctr_i = (clicks_i + prior * c) / (shows_i + prior)`` with ``c = sum clicks / sum shows`` (a Beta prior
    of strength ``prior`` centred on the global rate); items never shown get ``c``.
    """
    shows = np.zeros(n_items, dtype=np.float64)
    clicks = np.zeros(n_items, dtype=np.float64)
    for imp in impressions:
        if imp["split"] != split:
            continue
        cands = np.asarray(imp["candidates"], dtype=np.int64)
        np.add.at(shows, cands, 1.0)
        np.add.at(clicks, cands, np.asarray(imp["labels"], dtype=np.float64))
    if shows.sum() == 0:
        raise ConfigError(f"model=ctr: no {split!r} impression to count clicks in")
    rate = float(clicks.sum() / shows.sum())
    ctr = (clicks + prior * rate) / (shows + prior)
    return torch.as_tensor(ctr, dtype=torch.float32), rate


class ImpressionCTR(Recommender):
    """Rank candidates by their smoothed click-through rate over the training impressions (same for everyone).

    The reference non-personalised baseline of news recommendation (e.g. the "popularity / CTR" rows of
    MIND's leaderboard, Wu et al., ACL 2020): how often an article was clicked when it was shown. Unlike
    :class:`~recsys_gnn.models.baselines.pop.Popularity` (clicks only) it divides by exposures.

    Differences from the usual CTR: additive (Beta) smoothing towards the global rate with strength
    ``prior``, so articles shown a few times are not ranked by noise; articles never shown in training get the
    global rate (all tie). ``embed`` returns user ones ``(U, 1)`` and item CTRs ``(I, 1)``. Nothing is trained.

    Args:
        context: run-time data (``context.data.impressions``).
        prior: smoothing strength (pseudo-exposures at the global rate), >= 0.
    """

    trainable = False
    needs_text = False
    history_users = False  # non-personalised: the user row is a constant

    def __init__(self, context: ModelContext, prior: float = 10.0) -> None:
        super().__init__()
        data = context.data
        if not data.impressions:
            raise ConfigError("model=ctr needs impression logs (a news dataset: nemig, mind-*)")
        if prior < 0:
            raise ConfigError(f"model.prior must be >= 0, got {prior}")
        self.n_users, self.n_items, self.prior = data.n_users, data.n_items, float(prior)
        ctr, rate = smoothed_ctr(data.impressions, data.n_items, self.prior)
        self.register_buffer("ctr", ctr[:, None], persistent=False)  # (I, 1)
        self.register_buffer("ones", torch.ones(data.n_users, 1), persistent=False)  # (U, 1)
        log.info("ctr: global training CTR %.4f, prior %.1f", rate, self.prior)

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, 1)`` ones and ``(I, 1)`` smoothed training CTRs."""
        return self.ones, self.ctr

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}, prior={self.prior}"


class RandomScores(Recommender):
    """A seeded random score per item, the same for everyone: the sanity floor (impression AUC ~0.5).

    Args:
        context: run-time data (only the sizes are read).
        seed: seed of the scores.
    """

    trainable = False
    needs_text = False
    history_users = False

    def __init__(self, context: ModelContext, seed: int = 0) -> None:
        super().__init__()
        data = context.data
        self.n_users, self.n_items = data.n_users, data.n_items
        gen = torch.Generator().manual_seed(int(seed))
        self.register_buffer("scores", torch.rand(data.n_items, 1, generator=gen), persistent=False)  # (I, 1)
        self.register_buffer("ones", torch.ones(data.n_users, 1), persistent=False)  # (U, 1)

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, 1)`` ones and ``(I, 1)`` random scores."""
        return self.ones, self.scores

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}"
