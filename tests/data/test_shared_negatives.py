"""Shared negatives: ``neg_valid`` marks exactly the negatives outside each user's training items."""

from __future__ import annotations

import numpy as np

from recsys_gnn.data.datamodule import TrainPairs
from recsys_gnn.data.preprocess import preprocess
from recsys_gnn.data.readers.synthetic import read_synthetic
from recsys_gnn.data.splits import AutoSplit


def test_neg_valid_is_set_membership_and_the_draws_are_unchanged() -> None:
    # a dense-ish dataset, so that many shared negatives are some user's training items
    data = preprocess(
        read_synthetic(n_users=50, n_items=40, n_interactions=800, text_dim=4), AutoSplit(seed=0)
    )
    ds = TrainPairs(data, num_negatives=64, seed=7, shared_negatives=True)
    seen = {(int(u), int(i)) for u, i in data.train}
    rng = np.random.default_rng(7)
    order = np.random.default_rng(1).permutation(len(ds))
    for start in range(0, len(ds), 97):
        idx = order[start : start + 97].tolist()
        batch = ds.__getitems__(idx)
        neg = rng.integers(0, data.n_items, size=64)  # the same stream as before: one (N,) draw per batch
        np.testing.assert_array_equal(batch["neg"].numpy(), neg)
        users = data.train[idx, 0]
        expected = np.array([[(int(u), int(i)) not in seen for i in neg] for u in users])
        np.testing.assert_array_equal(batch["neg_valid"].numpy(), expected)
        assert batch["neg_valid"].dtype.is_floating_point is False and (~expected).any()
