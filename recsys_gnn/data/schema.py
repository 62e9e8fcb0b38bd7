"""Canonical tables every dataset reader returns.

Readers turn a dataset's own files into a :class:`RawDataset`; everything downstream (filtering, splits,
encoder, graphs) only sees these tables.

interactions: one row per (user, item) event
    user: str        original user id
    item: str        original item id
    rating: float    explicit rating, NaN where the dataset has none
    weight: float    implicit strength (play count, click=1.0); 1.0 where the dataset has none
    timestamp: int64 seconds since epoch, -1 where the dataset has none
items: one row per item with text
    item: str, title: str, text: str (the text the encoder sees)
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import SchemaError

log = logging.getLogger(__name__)

INTERACTION_COLUMNS: tuple[str, ...] = ("user", "item", "rating", "weight", "timestamp")
ITEM_COLUMNS: tuple[str, ...] = ("item", "title", "text")
IMPRESSION_COLUMNS: tuple[str, ...] = ("impression_id", "user", "candidates", "labels", "split")


@dataclass
class DropReport:
    """Counts of rows dropped or repaired, by reason. Nothing is dropped without an entry here."""

    counts: Counter = field(default_factory=Counter)

    def add(self, reason: str, n: int, source: str = "") -> None:
        """Record ``n`` rows dropped/repaired for ``reason`` (logged at WARNING when n > 0)."""
        if n <= 0:
            return
        key = f"{source}: {reason}" if source else reason
        self.counts[key] += int(n)
        log.warning("%s: %d rows", key, n)

    def merge(self, other: DropReport) -> None:
        self.counts.update(other.counts)

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass
class RawDataset:
    """A dataset as read from its files, before filtering and splitting.

    Attributes:
        name: dataset name as in ``conf/dataset/<name>.yaml``.
        interactions: table with :data:`INTERACTION_COLUMNS`.
        items: table with :data:`ITEM_COLUMNS`, one row per item id.
        has_ratings: whether ``rating`` holds explicit ratings (MovieLens, Amazon) or not.
        rating_scale: (min, max) of explicit ratings, or None.
        split: optional official split, aligned with ``interactions`` rows: values "train"/"val"/"test".
        impressions: optional news impressions with :data:`IMPRESSION_COLUMNS`; ``candidates`` is a list of
            item ids and ``labels`` a list of 0/1 of the same length.
        report: rows dropped/repaired while reading.
        item_vectors: optional ``(len(items), H)`` float32 item text vectors aligned with ``items`` rows, for
            datasets that come with precomputed vectors (the synthetic dataset): the encoder is not run then.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    has_ratings: bool = False
    rating_scale: tuple[float, float] | None = None
    split: pd.Series | None = None
    impressions: pd.DataFrame | None = None
    report: DropReport = field(default_factory=DropReport)
    item_vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        require_columns(self.interactions, INTERACTION_COLUMNS, f"{self.name} interactions")
        require_columns(self.items, ITEM_COLUMNS, f"{self.name} items")
        if self.item_vectors is not None and (
            self.item_vectors.ndim != 2 or len(self.item_vectors) != len(self.items)
        ):
            raise SchemaError(
                f"{self.name}: item_vectors of shape {self.item_vectors.shape} for {len(self.items)} item rows; "
                "expected (items, H)"
            )
        if self.split is not None and len(self.split) != len(self.interactions):
            raise SchemaError(
                f"{self.name}: official split has {len(self.split)} labels for {len(self.interactions)} interactions"
            )
        if self.impressions is not None:
            require_columns(self.impressions, IMPRESSION_COLUMNS, f"{self.name} impressions")


def require_columns(df: pd.DataFrame, columns: tuple[str, ...] | list[str], source: str) -> None:
    """Raise :class:`SchemaError` naming ``source`` and the missing columns if ``df`` lacks any."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: missing column(s) {missing}; found {list(df.columns)}; expected {list(columns)}"
        )


def make_interactions(user, item, rating=None, weight=None, timestamp=None) -> pd.DataFrame:
    """Build a canonical interactions table from column-like inputs (ids cast to str)."""
    user = pd.Series(user).astype(str).to_numpy()
    n = len(user)
    return pd.DataFrame(
        {
            "user": user,
            "item": pd.Series(item).astype(str).to_numpy(),
            "rating": np.full(n, np.nan) if rating is None else np.asarray(rating, dtype=np.float64),
            "weight": np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64),
            "timestamp": np.full(n, -1, dtype=np.int64)
            if timestamp is None
            else np.asarray(timestamp, dtype=np.int64),
        }
    )
