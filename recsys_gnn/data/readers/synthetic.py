"""A generated dataset of any size (``dataset=synthetic``): no files, no encoder, for scale tests.

Users and items get power-law (Zipf) weights, ``w_r = (r + 1) ** -alpha`` over a random ranking, so a few
items are very popular and a few users very active, as in real logs. Every user gets about
``min_per_user`` distinct items and every item at least one user; the remaining interactions are drawn as
independent (user ~ activity, item ~ popularity) pairs, duplicates redrawn, until exactly
``n_interactions`` distinct pairs exist. Items come with random unit vectors as their "text" embeddings
(``RawDataset.item_vectors``), which models use in place of encoder output. There are no ratings or
timestamps, so ``split=auto`` splits each user's items at random (8:1:1).

The same arguments and ``seed`` always give the same dataset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.schema import RawDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and shape of a synthetic dataset (see the module docstring)."""

    n_users: int = 1000
    n_items: int = 2000
    n_interactions: int = 20000
    text_dim: int = 384
    item_alpha: float = 0.8
    user_alpha: float = 0.6
    min_per_user: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_interactions", "text_dim", "min_per_user"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"synthetic dataset: {name} must be >= 1, got {getattr(self, name)}")
        if self.item_alpha < 0 or self.user_alpha < 0:
            raise ConfigError(
                f"synthetic dataset: item_alpha and user_alpha must be >= 0, got {self.item_alpha}, {self.user_alpha}"
            )
        base = self.n_users * min(self.min_per_user, self.n_items) + self.n_items
        if self.n_interactions < base:
            raise ConfigError(
                f"synthetic dataset: n_interactions={self.n_interactions} is below the "
                f"n_users * min_per_user + n_items = {base} pairs that give every user and item interactions"
            )
        if self.n_interactions > self.n_users * self.n_items // 2:
            raise ConfigError(
                f"synthetic dataset: n_interactions={self.n_interactions} is more than half of all "
                f"{self.n_users} x {self.n_items} pairs; use more users or items"
            )


def zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` probabilities ``∝ (rank + 1) ** -alpha`` over a random ranking of ``0..n-1``."""
    rank = rng.permutation(n)
    w = (rank + 1.0) ** -float(alpha)
    return w / w.sum()


def _draw(p: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indices drawn with probabilities ``p`` (inverse CDF: fast for large ``size``)."""
    cdf = np.cumsum(p)
    return np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right").clip(max=len(p) - 1)


def generate_interactions(spec: SyntheticSpec) -> np.ndarray:
    """``(n_interactions, 2)`` int64 distinct ``[user, item]`` pairs sorted by user then item."""
    rng = np.random.default_rng(spec.seed)
    n_u, n_i = int(spec.n_users), int(spec.n_items)
    p_user = zipf_weights(n_u, spec.user_alpha, rng)
    p_item = zipf_weights(n_i, spec.item_alpha, rng)
    m = min(int(spec.min_per_user), n_i)
    # Base pairs: every user's first items (redrawn where a user got the same item twice) and every item once.
    first = _draw(p_item, n_u * m, rng).reshape(n_u, m)
    for _ in range(20):
        srt = np.sort(first, axis=1)
        dup_rows = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if not dup_rows.any():
            break
        first[dup_rows] = _draw(p_item, int(dup_rows.sum()) * m, rng).reshape(-1, m)
    base = np.concatenate(
        [
            np.repeat(np.arange(n_u), m) * n_i + first.ravel(),
            _draw(p_user, n_i, rng) * n_i + np.arange(n_i),
        ]
    )
    keys = np.unique(base)
    need = int(spec.n_interactions) - len(keys)
    extra = np.empty(0, dtype=np.int64)
    while len(extra) < need:
        size = int((need - len(extra)) * 1.2) + 100
        new = _draw(p_user, size, rng) * n_i + _draw(p_item, size, rng)
        extra = np.union1d(extra, np.setdiff1d(new, keys, assume_unique=False))
    # union1d sorts: pick the surplus to drop at random, not by key order.
    extra = np.sort(rng.choice(extra, size=need, replace=False)) if need > 0 else extra
    keys = np.sort(np.concatenate([keys, extra]))
    return np.stack([keys // n_i, keys % n_i], axis=1)


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``(n, dim)`` float32 random unit vectors (uniform on the sphere), seeded."""
    rng = np.random.default_rng([seed, 1])
    out = rng.standard_normal((n, dim), dtype=np.float32)
    out /= np.sqrt(np.einsum("ij,ij->i", out, out)).clip(min=1e-12)[:, None]
    return out


def _ids(prefix: str, n: int) -> np.ndarray:
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(n)], dtype=object)


def read_synthetic(
    root: Path | None = None,
    *,
    n_users: int = 1000,
    n_items: int = 2000,
    n_interactions: int = 20000,
    text_dim: int = 384,
    item_alpha: float = 0.8,
    user_alpha: float = 0.6,
    min_per_user: int = 3,
    seed: int = 0,
) -> RawDataset:
    """Generate the synthetic dataset (``root`` is ignored: the dataset has no files).

    Ids are zero-padded (``u0042``, ``i0007``), so the pipeline's sorted id order is the generated order.
    """
    spec = SyntheticSpec(
        n_users=int(n_users),
        n_items=int(n_items),
        n_interactions=int(n_interactions),
        text_dim=int(text_dim),
        item_alpha=float(item_alpha),
        user_alpha=float(user_alpha),
        min_per_user=int(min_per_user),
        seed=int(seed),
    )
    pairs = generate_interactions(spec)
    users, items = _ids("u", spec.n_users), _ids("i", spec.n_items)
    n = len(pairs)
    interactions = pd.DataFrame(
        {
            "user": users[pairs[:, 0]],
            "item": items[pairs[:, 1]],
            "rating": np.full(n, np.nan),
            "weight": np.ones(n),
            "timestamp": np.full(n, -1, dtype=np.int64),
        }
    )
    titles = [f"synthetic item {k}" for k in range(spec.n_items)]
    item_table = pd.DataFrame({"item": items, "title": titles, "text": titles})
    log.info(
        "synthetic: %d users, %d items, %d interactions, %d-d unit item vectors (seed %d)",
        spec.n_users,
        spec.n_items,
        n,
        spec.text_dim,
        spec.seed,
    )
    return RawDataset(
        name="synthetic",
        interactions=interactions,
        items=item_table,
        item_vectors=unit_vectors(spec.n_items, spec.text_dim, spec.seed),
    )
