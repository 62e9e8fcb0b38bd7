"""The processed, split, id-remapped dataset every model trains and is evaluated on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass
class InteractionData:
    """Contiguous-id interactions split into train/val/test.

    Users are ``0..n_users-1`` and items ``0..n_items-1``. Pair arrays are ``(M, 2)`` int64 ``[user, item]``.

    Attributes:
        user_ids: ``(n_users,)`` original user id (str) of each index.
        item_ids: ``(n_items,)`` original item id (str) of each index.
        item_texts: ``n_items`` texts the encoder sees.
        item_titles: ``n_items`` display titles.
        train, val, test: ``(M, 2)`` pairs.
        train_weight: ``(M_train,)`` float32 implicit weights of ``train`` rows.
        train_rating, val_rating, test_rating: explicit ratings aligned with the pairs, or None.
        cold_items: ``(n_items,)`` bool, items removed from training (split=cold_items), or None.
        cold_users: ``(n_users,)`` bool, users whose history is only given at evaluation, or None.
        val_history / test_history: for cold users, the ``(M, 2)`` pairs that represent them at evaluation
            (their known items), which are also masked when ranking; None otherwise.
        impressions: news impressions remapped to indices (list of dicts with keys user, candidates, labels,
            split) or None.
        protocol: a plain dict describing filtering, split and their parameters (saved with every result).
        drops: rows dropped/repaired by reason.
        item_vectors: ``(n_items, H)`` float32 precomputed item text vectors (used instead of encoding
            ``item_texts``), or None.
    """

    n_users: int
    n_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_texts: list[str]
    item_titles: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_weight: np.ndarray
    train_rating: np.ndarray | None = None
    val_rating: np.ndarray | None = None
    test_rating: np.ndarray | None = None
    cold_items: np.ndarray | None = None
    cold_users: np.ndarray | None = None
    val_history: np.ndarray | None = None
    test_history: np.ndarray | None = None
    impressions: list[dict[str, Any]] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    item_vectors: np.ndarray | None = None

    def matrix(self, pairs: np.ndarray) -> sp.csr_matrix:
        """``(n_users, n_items)`` binary CSR matrix of ``pairs``."""
        data = np.ones(len(pairs), dtype=np.float32)
        m = sp.csr_matrix((data, (pairs[:, 0], pairs[:, 1])), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def known_for(self, stage: str) -> np.ndarray:
        """Pairs masked when ranking for ``stage`` ("val" or "test"): train (+ val at test) + cold history."""
        parts = [self.train]
        if stage == "test":
            parts.append(self.val)
        hist = self.val_history if stage == "val" else self.test_history
        if hist is not None:
            parts.append(hist)
        return np.concatenate(parts, axis=0)
