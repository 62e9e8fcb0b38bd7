"""Frozen LM content ranking: cosine between an item's text embedding and the mean of the user's items."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys_gnn.models.base import Recommender
from recsys_gnn.models.context import ModelContext

log = logging.getLogger(__name__)


class LMContent(Recommender):
    """Content-based ranking with the frozen LM: the "teacher" the compressor is measured against.

    Items are their L2-normalised text embeddings ``x_i`` (I, H); a user is the L2-normalised mean of the
    normalised embeddings of their training items; the score is the cosine ``<u, x_i>``. Nothing is trained.

    Paper: the classic content-based recommender with a user profile = centroid of liked items (Lops et al.,
    "Content-based Recommender Systems: State of the Art and Trends", Recommender Systems Handbook 2011),
    with Sentence-BERT text vectors (Reimers & Gurevych, EMNLP 2019).

    Differences from the paper: the profile is an unweighted centroid (no Rocchio negatives or rating
    weights); users with no training items get a zero vector (all scores 0) unless they are folded in at
    evaluation from their known history, which is re-normalised like any profile. On news impressions the
    user of each impression is the normalised mean of its click history's articles
    (:mod:`recsys_gnn.models.history`).

    Args:
        context: run-time data and encoder (``context.item_text_emb``, ``context.train_matrix()``).
    """

    trainable = False
    needs_text = True
    similarity = "cosine"  # tables are L2-normalised; news history users are re-normalised too

    def __init__(self, context: ModelContext) -> None:
        super().__init__()
        data = context.data
        self.n_users, self.n_items = data.n_users, data.n_items
        items = F.normalize(torch.as_tensor(context.item_text_emb, dtype=torch.float32), dim=-1)  # (I, H)
        users = F.normalize(torch.sparse.mm(context.train_matrix(), items), dim=-1)  # (U, H)
        self.register_buffer("item_vec", items, persistent=False)
        self.register_buffer("user_vec", users, persistent=False)
        log.info("LM content model: %d users, %d items, dim %d", self.n_users, self.n_items, items.shape[1])

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, H)`` normalised user profiles and ``(I, H)`` normalised item text embeddings."""
        return self.user_vec, self.item_vec

    def fold_in(self, cache: tuple[Tensor, Tensor], history: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        """Profiles of users in ``history`` (M, 2) from those items, normalised so scores stay cosines."""
        if history.numel() == 0:
            return cache
        user_emb, item_emb = super().fold_in(cache, history, n_users)
        return F.normalize(user_emb, dim=-1), item_emb

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}, dim={self.item_vec.shape[1]}"
