"""Most-popular baseline: every user gets the items with the most training users."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from recsys_gnn.models.base import Recommender
from recsys_gnn.models.context import ModelContext

log = logging.getLogger(__name__)


def item_popularity(train: np.ndarray | Tensor, n_items: int) -> Tensor:
    """Number of distinct training users of each item, ``(I,)`` float32.

    Args:
        train: ``(M, 2)`` ``[user, item]`` training pairs; repeated pairs count once.
        n_items: I.
    """
    pairs = torch.as_tensor(train, dtype=torch.long).reshape(-1, 2)
    if len(pairs):
        pairs = torch.unique(pairs, dim=0)
    return torch.bincount(pairs[:, 1], minlength=n_items).to(torch.float32)


class Popularity(Recommender):
    """Rank items by how many users interacted with them in training (the same list for everyone).

    Paper: the "MostPop" baseline, e.g. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
    Feedback", UAI 2009 (used as the non-personalised reference).

    Differences from the paper: popularity counts distinct training users per item (repeated interactions
    count once); ties keep the ranking's own tie-breaking. ``embed`` returns user ones ``(U, 1)`` and item
    counts ``(I, 1)``, so the dot-product scorer of :class:`Recommender` yields the counts. Nothing is trained.

    Args:
        context: run-time data (only ``context.data.train`` is read).
    """

    trainable = False
    needs_text = False
    history_users = False  # non-personalised: news users are not folded from their click history

    def __init__(self, context: ModelContext) -> None:
        super().__init__()
        data = context.data
        self.n_users, self.n_items = data.n_users, data.n_items
        pop = item_popularity(data.train, data.n_items)  # (I,)
        self.register_buffer("popularity", pop[:, None], persistent=False)  # (I, 1)
        self.register_buffer("ones", torch.ones(data.n_users, 1), persistent=False)  # (U, 1)
        log.info("popularity: %d items, %d with no training user", self.n_items, int((pop == 0).sum()))

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, 1)`` ones and ``(I, 1)`` training popularity."""
        return self.ones, self.popularity

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}"
