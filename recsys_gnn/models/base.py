"""The contract every recommender implements (RecBole-style): embed, score, loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from recsys_gnn.models.losses import bce_loss, bpr_loss

Batch = dict[str, Tensor]


class Recommender(nn.Module):
    """Base class: a model that produces user/item embeddings and is trained on (user, pos, neg) batches.

    Subclasses implement :meth:`embed`. Scores are dot products unless :meth:`score` is overridden.
    ``trainable = False`` marks models with nothing to fit (popularity, frozen LM content ranking).
    ``needs_text`` tells the pipeline whether the model uses item text at all.
    """

    trainable: bool = True
    needs_text: bool = True

    def embed(self) -> tuple[Tensor, Tensor]:
        """Return ``(user_emb (U, D), item_emb (I, D))`` for the current parameters."""
        raise NotImplementedError

    def score(self, users: Tensor, cache: tuple[Tensor, Tensor]) -> Tensor:
        """Scores of every item for ``users`` (B,) -> ``(B, I)`` given ``cache = embed()``."""
        user_emb, item_emb = cache
        return user_emb[users] @ item_emb.T

    def fold_in(self, cache: tuple[Tensor, Tensor], history: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        """Represent users from items they are known to like at evaluation time (new/cold users).

        Args:
            cache: ``embed()`` output.
            history: ``(M, 2)`` [user, item] pairs known at evaluation time.
            n_users: U.
        Returns:
            ``cache`` with the rows of users in ``history`` replaced by the mean of their items' embeddings.
        """
        if history.numel() == 0:
            return cache
        user_emb, item_emb = cache
        users = history[:, 0]
        summed = torch.zeros(n_users, item_emb.shape[1], dtype=item_emb.dtype, device=item_emb.device)
        summed.index_add_(0, users, item_emb[history[:, 1]])
        counts = torch.bincount(users, minlength=n_users).to(item_emb.dtype)
        has = counts > 0
        user_emb = user_emb.clone()
        user_emb[has] = summed[has] / counts[has, None]
        return user_emb, item_emb

    def loss(self, batch: Batch, kind: str = "bpr") -> tuple[Tensor, dict[str, Any]]:
        """Training loss for a batch with ``user (B,)``, ``pos (B,)``, ``neg (B, N)``.

        Returns the loss and a dict of extra scalars to log.
        """
        user_emb, item_emb = self.embed()
        u = user_emb[batch["user"]]  # (B, D)
        pos = (u * item_emb[batch["pos"]]).sum(-1)  # (B,)
        neg = torch.einsum("bd,bnd->bn", u, item_emb[batch["neg"]])  # (B, N)
        if kind == "bpr":
            main = bpr_loss(pos, neg)
        elif kind == "bce":
            main = bce_loss(pos, neg)
        else:
            raise ValueError(f"unknown loss {kind!r}; expected 'bpr' or 'bce'")
        return main + self.regularization(batch, user_emb, item_emb), {}

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Extra loss terms (e.g. L2 on the batch's embeddings); zero by default."""
        return user_emb.new_zeros(())


class GraphRecommender(Recommender):
    """A recommender holding a DGL graph in ``self.graph`` that follows the module across devices."""

    graph: Any

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        probe = fn(torch.zeros(1))
        if getattr(self, "graph", None) is not None and self.graph.device != probe.device:
            self.graph = self.graph.to(probe.device)
        return out
