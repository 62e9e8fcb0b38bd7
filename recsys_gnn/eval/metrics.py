"""Top-K ranking metrics from a hit matrix (binary relevance).

Every function takes ``hits``: ``(B, K)`` bool, ``hits[b, r]`` = the item at rank ``r + 1`` of user ``b``'s
top-K list is relevant, with ``K >= k`` (or ``K`` = catalogue size when that is smaller), and ``n_rel``:
``(B,)`` number of relevant items of each user (> 0). It returns the ``(B,)`` float64 per-user value; average
over users outside. Because ``hits`` of the top-``K`` list contains the top-``k`` list for every ``k <= K``, one
``topk`` at the largest ``k`` yields every metric at every ``k``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

MetricFn = Callable[[Tensor, Tensor, int], Tensor]


def _top(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    if hits.dim() != 2 or n_rel.shape != hits.shape[:1]:
        raise ValueError(
            f"expected hits (B, K) and n_rel (B,); got {tuple(hits.shape)} and {tuple(n_rel.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    return hits[:, :k].to(torch.float64)


def recall_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """Recall@k = |relevant ∩ top-k| / |relevant| (RecBole's definition: the denominator is not capped at k,
    so a user with more than k relevant items cannot reach 1)."""
    return _top(hits, n_rel, k).sum(1) / n_rel.to(torch.float64).clamp(min=1)


def precision_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """Precision@k = |relevant ∩ top-k| / k."""
    return _top(hits, n_rel, k).sum(1) / k


def hit_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """Hit@k = 1 if any of the top-k items is relevant, else 0."""
    return (_top(hits, n_rel, k).sum(1) > 0).to(torch.float64)


def _discounts(n: int, device: torch.device) -> Tensor:
    """``(n,)`` 1 / log2(rank + 1) for ranks 1..n."""
    return 1.0 / torch.log2(torch.arange(2, n + 2, dtype=torch.float64, device=device))


def ndcg_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """NDCG@k = DCG@k / IDCG@k with DCG@k = sum_{r=1..k} hit_r / log2(r + 1) and IDCG@k the DCG of a perfect
    list, sum_{r=1..min(n_rel, k)} 1 / log2(r + 1)."""
    h = _top(hits, n_rel, k)
    disc = _discounts(k, h.device)
    dcg = (h * disc[: h.shape[1]]).sum(1)
    ideal_len = n_rel.to(torch.long).clamp(min=1, max=k)
    idcg = torch.cumsum(disc, 0)[ideal_len - 1]
    return dcg / idcg


def mrr_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """MRR@k = 1 / rank of the first relevant item within the top k, 0 when there is none."""
    h = _top(hits, n_rel, k)
    if h.shape[1] == 0:
        return torch.zeros(h.shape[0], dtype=torch.float64, device=h.device)
    first = h.argmax(1)  # argmax returns the first maximal index
    return torch.where(h.sum(1) > 0, 1.0 / (first + 1).to(torch.float64), torch.zeros_like(h[:, 0]))


METRICS: dict[str, MetricFn] = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hit": hit_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
}
