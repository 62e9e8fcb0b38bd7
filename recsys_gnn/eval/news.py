"""Impression evaluation of news recommenders: history users, per-impression metrics, bootstrap CIs.

Each impression is scored by the dot product of its user row and its candidates' rows of the model's item
table. The user row is the impression's click history folded through the item table
(:func:`recsys_gnn.models.history.history_users`) for models that represent users that way, else the model's
own user row. Nothing reads the candidates' order in the impression. Metric definitions (AUC, MRR, nDCG@5/10,
random tie-breaking, impressions with one class skipped) are those of :mod:`recsys_gnn.eval.impression`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from recsys_gnn.data.impressions import history_csr
from recsys_gnn.eval.impression import METRIC_KEYS, single_impression_metrics
from recsys_gnn.models.history import history_users


def impression_user_rows(
    user_emb: Tensor,
    item_emb: Tensor,
    impressions: list[dict[str, Any]],
    use_history: bool = True,
    similarity: str = "dot",
    item_bias: bool = False,
) -> Tensor:
    """``(N, D)`` user row of each impression: its click history's mean item row, or the user's row.

    Impressions without history (or ``use_history=False``) use ``user_emb[user]``. ``item_bias``: the tables'
    last column is an item bias (history rows get 1 there, see :func:`~recsys_gnn.models.history.history_users`).
    """
    users = torch.as_tensor([int(imp["user"]) for imp in impressions], dtype=torch.long)
    fallback = user_emb[users.to(user_emb.device)]  # (N, D)
    if not use_history or not any(len(imp.get("history", ())) for imp in impressions):
        return fallback
    indptr, items = history_csr(impressions)
    device = item_emb.device
    return history_users(
        item_emb,
        torch.from_numpy(items).to(device),
        torch.from_numpy(indptr[:-1]).to(device),
        fallback,
        similarity,
        item_bias,
    )


def impression_scores(
    user_rows: Tensor, item_emb: Tensor, impressions: list[dict[str, Any]]
) -> list[np.ndarray]:
    """``(C_i,)`` float64 scores of each impression's candidates: ``<user_rows[i], item_emb[c]>``."""
    if not impressions:
        return []
    cands = np.concatenate([np.asarray(imp["candidates"], dtype=np.int64) for imp in impressions])
    rows = np.repeat(np.arange(len(impressions)), [len(imp["candidates"]) for imp in impressions])
    with torch.no_grad():
        c = torch.from_numpy(cands).to(item_emb.device)
        r = torch.from_numpy(rows).to(user_rows.device)
        flat = (item_emb[c] * user_rows[r]).sum(-1).double().cpu().numpy()
    bounds = np.cumsum([len(imp["candidates"]) for imp in impressions])[:-1]
    return np.split(flat, bounds)


def per_impression_metrics(scores: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
    """``(N_eval, 4)`` AUC, MRR, nDCG@5, nDCG@10 of each impression with both clicked and unclicked candidates."""
    out = []
    for s, y in zip(scores, labels, strict=True):
        y = np.asarray(y) == 1
        if 0 < y.sum() < len(y):
            out.append(single_impression_metrics(np.asarray(s, dtype=np.float64), y))
    return np.asarray(out, dtype=np.float64).reshape(-1, len(METRIC_KEYS))


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of the mean of ``values`` (resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def summarize(per_imp: np.ndarray, n_skipped: int, ci: bool = False, seed: int = 0) -> dict[str, float]:
    """Means of :func:`per_impression_metrics` rows, counts, and optionally the bootstrap 95% CI of AUC."""
    means = per_imp.mean(0) if len(per_imp) else np.full(len(METRIC_KEYS), np.nan)
    out = {k: float(v) for k, v in zip(METRIC_KEYS, means, strict=True)}
    out["n_impressions"] = float(len(per_imp))
    out["n_skipped"] = float(n_skipped)
    if ci:
        out["auc_ci_low"], out["auc_ci_high"] = bootstrap_ci(per_imp[:, 0], seed=seed)
    return out


def evaluate_impressions(
    user_emb: Tensor,
    item_emb: Tensor,
    impressions: list[dict[str, Any]],
    use_history: bool = True,
    similarity: str = "dot",
    new_items: np.ndarray | None = None,
    ci: bool = False,
    item_bias: bool = False,
) -> dict[str, dict[str, float]]:
    """Impression metrics of one stage.

    Args:
        user_emb, item_emb: the model's ``(U, D)`` / ``(I, D)`` tables as scored.
        impressions: the stage's impressions.
        use_history: represent each impression's user by its click history.
        similarity: the model's similarity ("cosine" normalises history users).
        new_items: optional ``(I,)`` bool of items never seen in training; adds the ``"new"`` group, each
            impression restricted to its new candidates (only impressions with a clicked and an unclicked
            new candidate count).
        ci: add the bootstrap 95% CI of AUC over impressions (``auc_ci_low``, ``auc_ci_high``).
        item_bias: the tables' last column is an item bias (the model's ``item_bias``).

    Returns:
        ``{"all": metrics}`` and, with ``new_items``, ``{"new": metrics}`` (see :func:`summarize`).
    """
    rows = impression_user_rows(user_emb, item_emb, impressions, use_history, similarity, item_bias)
    scores = impression_scores(rows, item_emb, impressions)
    labels = [np.asarray(imp["labels"]) for imp in impressions]
    per_imp = per_impression_metrics(scores, labels)
    out = {"all": summarize(per_imp, len(impressions) - len(per_imp), ci)}
    if new_items is not None:
        new_scores, new_labels = [], []
        for s, y, imp in zip(scores, labels, impressions, strict=True):
            keep = new_items[np.asarray(imp["candidates"], dtype=np.int64)]
            if keep.any():
                new_scores.append(s[keep])
                new_labels.append(y[keep])
        per_new = per_impression_metrics(new_scores, new_labels)
        out["new"] = summarize(per_new, len(new_scores) - len(per_new), ci)
    return out


def seen_in_training(data: Any) -> np.ndarray:
    """``(I,)`` bool: items with a training interaction or shown in a training impression."""
    seen = np.zeros(data.n_items, dtype=bool)
    seen[np.asarray(data.train, dtype=np.int64)[:, 1]] = True
    for imp in data.impressions or []:
        if imp["split"] == "train":
            seen[np.asarray(imp["candidates"], dtype=np.int64)] = True
    return seen
