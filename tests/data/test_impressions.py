"""Impression training samples: only training impressions, K negatives from the same impression, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.impressions import ImpressionSamples, history_csr, ragged_rows


def _imp(user, cands, labels, split, history=()):
    return {
        "user": user,
        "candidates": np.asarray(cands, dtype=np.int64),
        "labels": np.asarray(labels, dtype=np.int64),
        "split": split,
        "history": np.asarray(history, dtype=np.int64),
    }


IMPRESSIONS = [
    _imp(0, [10, 11, 12, 13, 14, 15], [1, 0, 0, 0, 0, 0], "train", [1, 2]),  # 5 negatives: no repeats
    _imp(1, [20, 21, 22], [0, 1, 1], "train", [3]),  # 2 clicks, 1 negative: drawn with replacement
    _imp(2, [30, 31], [1, 1], "train", [4]),  # no negative: no sample
    _imp(2, [40, 41], [0, 0], "train", [4]),  # no click: no sample
    _imp(0, [50, 51, 52], [1, 0, 0], "val", [1, 2]),
    _imp(1, [60, 61, 62], [0, 0, 1], "test", [3]),
    _imp(3, [70, 71], [1, 0], "train"),  # empty history
]


def test_samples_come_from_training_impressions_only() -> None:
    ds = ImpressionSamples(IMPRESSIONS, num_negatives=4, seed=0)
    assert len(ds) == 4  # the clicks of impressions 0 (1), 1 (2) and 6 (1)
    batch = ds.__getitems__(list(range(len(ds))))
    assert sorted(batch["pos"].tolist()) == [10, 21, 22, 70]
    seen = set(batch["pos"].tolist()) | set(batch["neg"].flatten().tolist())
    assert not seen & {50, 51, 52, 60, 61, 62, 30, 31, 40, 41}


def test_negatives_are_unclicked_candidates_of_the_same_impression() -> None:
    ds = ImpressionSamples(IMPRESSIONS, num_negatives=4, seed=1)
    for _ in range(20):
        batch = ds.__getitems__(list(range(len(ds))))
        b = len(ds)
        assert batch["user"].shape == batch["pos"].shape == batch["weight"].shape == (b,)
        assert batch["neg"].shape == (b, 4) and batch["neg"].dtype == torch.int64
        for pos, neg, user in zip(
            batch["pos"].tolist(), batch["neg"].tolist(), batch["user"].tolist(), strict=True
        ):
            if pos == 10:
                assert user == 0 and sorted(neg) == sorted(set(neg)) and set(neg) <= {11, 12, 13, 14, 15}
            elif pos in (21, 22):
                assert user == 1 and neg == [20, 20, 20, 20]  # one negative: with replacement
            else:
                assert pos == 70 and user == 3 and neg == [71] * 4


def test_history_travels_with_each_sample() -> None:
    ds = ImpressionSamples(IMPRESSIONS, num_negatives=2, seed=0)
    batch = ds.__getitems__(list(range(len(ds))))
    items, offsets = batch["hist_items"].tolist(), batch["hist_offsets"].tolist()
    ends = [*offsets[1:], len(items)]
    expected = {0: [1, 2], 1: [3], 3: []}
    for user, lo, hi in zip(batch["user"].tolist(), offsets, ends, strict=True):
        assert items[lo:hi] == expected[user]


def test_k_negatives_and_errors() -> None:
    ds = ImpressionSamples(IMPRESSIONS, num_negatives=1, seed=0)
    assert ds.__getitems__([0, 1])["neg"].shape == (2, 1)
    with pytest.raises(ConfigError, match="impression_negatives"):
        ImpressionSamples(IMPRESSIONS, num_negatives=0)
    with pytest.raises(ConfigError, match="sampling=uniform"):
        ImpressionSamples([IMPRESSIONS[2], IMPRESSIONS[4]], num_negatives=4)


def test_history_csr_and_ragged_rows() -> None:
    indptr, items = history_csr(IMPRESSIONS[:3] + [{"user": 0, "candidates": [], "labels": [], "split": "x"}])
    assert indptr.tolist() == [0, 2, 3, 4, 4] and items.tolist() == [1, 2, 3, 4]
    flat, offsets = ragged_rows(indptr, items, np.array([3, 1, 0]))
    assert flat.tolist() == [3, 1, 2] and offsets.tolist() == [0, 0, 1]
