"""Pairwise and pointwise ranking losses over (B,) positive and (B, N) negative scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Bayesian personalised ranking: ``mean(-log sigmoid(s_pos - s_neg))`` over (B, N) pairs."""
    return -F.logsigmoid(pos[:, None] - neg).mean()


def bce_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Binary cross-entropy with sampled negatives: positives labelled 1, each negative 0."""
    pos_l = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    neg_l = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    return pos_l + neg_l


def l2_reg(*tensors: Tensor) -> Tensor:
    """``sum ||t||^2 / 2`` averaged over the batch dimension of the first tensor (LightGCN's regulariser)."""
    b = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / (2 * b)


def batch_embedding_l2(weight: float, batch: dict[str, Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
    """``weight * l2_reg`` of the batch's user, positive and negative rows of ``(U, D)``/``(I, D)`` tables."""
    if weight <= 0:
        return user_emb.new_zeros(())
    return weight * l2_reg(
        user_emb[batch["user"]], item_emb[batch["pos"]], item_emb[batch["neg"]].flatten(0, 1)
    )
