"""Impression metrics of news recommendation: AUC, MRR, nDCG@5, nDCG@10, per impression then averaged.

Definitions follow the official MIND scorer (https://github.com/msnews/MIND/blob/master/evaluate.py), which
every news-recommendation paper reports:

* AUC: ``sklearn.metrics.roc_auc_score`` of the impression (tied scores count one half).
* MRR: ``sum_i y_i / rank_i / sum_i y_i`` -- the mean of ``1/rank`` over the clicked candidates.
* nDCG@k: ``DCG@k / IDCG@k`` with gains ``2**y - 1`` and discounts ``log2(rank + 1)``.

Ties. MIND ranks by ``np.argsort(score)[::-1]``, so tied candidates are ordered by their position in the
impression, which is arbitrary (a model that outputs a constant would score by the candidate order). Here
MRR and nDCG use the expected value under uniformly random tie-breaking (McSherry & Najork, ECIR 2008; the
same convention as ``sklearn.metrics.ndcg_score(ignore_ties=False)``). Without ties both are identical to
MIND's.

Impressions whose candidates are all clicked or all unclicked have no AUC (and trivial MRR/nDCG); they are
skipped for all four metrics, so the four are averaged over the same impressions, and counted in
``n_skipped``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

METRIC_KEYS: tuple[str, ...] = ("auc", "mrr", "ndcg@5", "ndcg@10")
_NDCG_KS: tuple[int, ...] = (5, 10)
# rows of (candidate, user) pairs scored per batch in score_impressions: bounds the (B, D) gather
_SCORE_BATCH = 1 << 20


def single_impression_metrics(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """AUC, MRR, nDCG@5 and nDCG@10 of one impression with both clicked and unclicked candidates.

    Args:
        scores: ``(C,)`` finite model scores of the candidates.
        labels: ``(C,)`` 0/1 clicks, at least one of each.

    Returns:
        ``(auc, mrr, ndcg@5, ndcg@10)``.
    """
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order].astype(np.float64)
    n_pos = float(sorted_labels.sum())
    n_neg = n - n_pos

    # tie groups of equal scores, best first: (G,) start rank index, size, clicked count
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sizes = np.diff(np.r_[starts, n])
    pos_in_group = np.add.reduceat(sorted_labels, starts)
    neg_in_group = sizes - pos_in_group

    # under random tie-breaking every rank of a group holds a click with probability pos/size; MRR and
    # DCG are linear in the clicks, so their expectation uses this (C,) expected relevance per rank
    expected_rel = np.repeat(pos_in_group / sizes, sizes)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    mrr = float((expected_rel / ranks).sum() / n_pos)

    discounts = 1.0 / np.log2(ranks + 1.0)
    ndcgs = []
    for k in _NDCG_KS:
        dcg = float((expected_rel[:k] * discounts[:k]).sum())
        idcg = float(discounts[: min(int(n_pos), k)].sum())
        ndcgs.append(dcg / idcg)

    # Mann-Whitney: each click beats the unclicked in lower groups and ties half of those in its own
    neg_below = n_neg - np.cumsum(neg_in_group)
    auc = float((pos_in_group * (neg_below + 0.5 * neg_in_group)).sum() / (n_pos * n_neg))
    return auc, mrr, ndcgs[0], ndcgs[1]


def impression_metrics(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """Average AUC, MRR, nDCG@5 and nDCG@10 over impressions.

    Args:
        scores: one ``(C_i,)`` array of finite scores per impression.
        labels: one ``(C_i,)`` array of 0/1 clicks per impression, aligned with ``scores``.

    Returns:
        ``{"auc", "mrr", "ndcg@5", "ndcg@10"}`` means over the evaluated impressions (NaN when none), plus
        ``"n_impressions"`` (evaluated) and ``"n_skipped"`` (only clicked or only unclicked candidates).

    Raises:
        ValueError: lengths differ, an array is not 1-D, a score is not finite or a label is not 0/1.
    """
    if len(scores) != len(labels):
        raise ValueError(f"impression_metrics: {len(scores)} score arrays for {len(labels)} label arrays")
    totals = np.zeros(len(METRIC_KEYS))
    n_eval = n_skipped = 0
    for i, (s, y) in enumerate(zip(scores, labels, strict=True)):
        s = np.asarray(s, dtype=np.float64)
        y = np.asarray(y)
        if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
            raise ValueError(
                f"impression {i}: scores shape {s.shape} and labels shape {y.shape}; expected two equal 1-D shapes"
            )
        if not np.isfinite(s).all():
            bad = int(np.flatnonzero(~np.isfinite(s))[0])
            raise ValueError(f"impression {i}: candidate {bad} has non-finite score {s[bad]}")
        clicked = y == 1
        if not (clicked | (y == 0)).all():
            bad = int(np.flatnonzero(~(clicked | (y == 0)))[0])
            raise ValueError(f"impression {i}: candidate {bad} has label {y[bad]!r}; expected 0 or 1")
        n_pos = int(clicked.sum())
        if n_pos == 0 or n_pos == len(y):
            n_skipped += 1
            continue
        totals += single_impression_metrics(s, clicked)
        n_eval += 1

    if n_skipped:
        log.info("impression metrics: skipped %d impressions with a single class of labels", n_skipped)
    if n_eval == 0:
        log.warning("impression metrics: no impression has both clicked and unclicked candidates")
        means = np.full(len(METRIC_KEYS), np.nan)
    else:
        means = totals / n_eval
    out: dict[str, float] = {k: float(v) for k, v in zip(METRIC_KEYS, means, strict=True)}
    out["n_impressions"] = n_eval
    out["n_skipped"] = n_skipped
    return out


def score_impressions(
    user_emb: torch.Tensor, item_emb: torch.Tensor, impressions: list[dict[str, Any]]
) -> dict[str, float]:
    """Score impressions by the dot product of user and candidate embeddings, then average the metrics.

    Args:
        user_emb: ``(U, D)`` user embeddings.
        item_emb: ``(I, D)`` item embeddings (same device as ``user_emb``).
        impressions: dicts with int ``"user"`` (row of ``user_emb``), ``"candidates"`` ``(C_i,)`` int item
            rows and ``"labels"`` ``(C_i,)`` 0/1 clicks; other keys are ignored.

    Returns:
        The dict of :func:`impression_metrics`.

    Raises:
        ValueError: embeddings are not 2-D with the same width, or an index is out of range.
    """
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(
            f"score_impressions: user_emb {tuple(user_emb.shape)} and item_emb {tuple(item_emb.shape)}; "
            "expected (U, D) and (I, D)"
        )
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    cand_list, user_list, labels = [], [], []
    for i, imp in enumerate(impressions):
        cands = np.asarray(imp["candidates"], dtype=np.int64).ravel()
        user = int(imp["user"])
        if not 0 <= user < n_users:
            raise ValueError(f"impression {i}: user index {user} outside [0, {n_users})")
        if len(cands) and (cands.min() < 0 or cands.max() >= n_items):
            bad = cands[(cands < 0) | (cands >= n_items)][0]
            raise ValueError(f"impression {i}: candidate item index {bad} outside [0, {n_items})")
        cand_list.append(cands)
        user_list.append(np.full(len(cands), user, dtype=np.int64))
        labels.append(np.asarray(imp["labels"]))
    if not impressions:
        return impression_metrics([], [])

    cand_all = np.concatenate(cand_list)
    user_all = np.concatenate(user_list)
    flat = np.empty(len(cand_all), dtype=np.float64)
    device = item_emb.device
    with torch.no_grad():
        for lo in range(0, len(cand_all), _SCORE_BATCH):
            hi = min(lo + _SCORE_BATCH, len(cand_all))
            c = torch.from_numpy(cand_all[lo:hi]).to(device)
            u = torch.from_numpy(user_all[lo:hi]).to(device)
            flat[lo:hi] = (item_emb[c] * user_emb[u]).sum(dim=-1).double().cpu().numpy()
    bounds = np.cumsum([len(c) for c in cand_list])[:-1]
    return impression_metrics(np.split(flat, bounds), labels)
