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


def softmax_loss(
    pos: Tensor, neg: Tensor, temperature: float = 1.0, neg_valid: Tensor | None = None
) -> Tensor:
    """Sampled softmax (InfoNCE): ``mean_b -log( e^{p_b/T} / (e^{p_b/T} + sum_n e^{s_bn/T}) )``.

    Args:
        pos: ``(B,)`` positive scores.
        neg: ``(B, N)`` negative scores (per-user, or a shared set broadcast to every row).
        temperature: ``T > 0``; scores are divided by it (cosine scores want ~0.1-0.3, dot products 1).
        neg_valid: optional ``(B, N)`` bool; False drops that negative (e.g. a shared negative that is one of
            the user's own training items).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = torch.cat([pos[:, None], neg], 1) / temperature  # (B, 1 + N)
    if neg_valid is not None:
        keep = torch.cat([torch.ones_like(neg_valid[:, :1]), neg_valid.bool()], 1)
        logits = logits.masked_fill(~keep, float("-inf"))
    return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()


def info_nce(view1: Tensor, view2: Tensor, temperature: float) -> Tensor:
    """InfoNCE of two ``(M, D)`` views of the same M nodes, cosine over ``temperature``:
    ``mean_m -log( e^{cos(a_m, b_m)/T} / sum_n e^{cos(a_m, b_n)/T} )`` (the other nodes are the negatives)."""
    a, b = F.normalize(view1, dim=-1), F.normalize(view2, dim=-1)
    logits = a @ b.T / temperature  # (M, M)
    return (torch.logsumexp(logits, 1) - logits.diagonal()).mean()
