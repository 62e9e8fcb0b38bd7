"""calibrate_cold_scale: the grid value with the best validation NDCG, on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.cold_calibration import calibrate_cold_scale
from recsys_gnn.models.base import Recommender


class FixedTables(Recommender):
    """Fixed tables; rows of the untrained items multiplied by the scale outside training."""

    def __init__(self, users: Tensor, items: Tensor, untrained: Tensor) -> None:
        super().__init__()
        self.users, self.items = nn.Parameter(users), items
        self.register_buffer("untrained", untrained)
        self.scale = 1.0

    def set_cold_scale(self, value: float) -> None:
        self.scale = float(value)

    def embed(self) -> tuple[Tensor, Tensor]:
        factor = torch.where(self.untrained, self.scale, 1.0)[:, None]
        return self.users, self.items * (factor if not self.training else 1.0)


def _case() -> tuple[FixedTables, InteractionData]:
    """Items 0-1 trained (warm), 2-3 untrained (new); every item row is a scalar score for one user.

    User 0's val target is new item 2 (score 0.5) against warm item 0 (0.8): a hit at rank 1 needs s > 1.6.
    User 1's val target is warm item 1 (0.9) against new item 3 (0.4): it stays first while s < 2.25.
    NDCG@1 over the two users: 0.5 for s <= 1.6, 1.0 for 1.6 < s < 2.25, 0.5 above.
    """
    # users are one-hot, items hold each user's score in that user's column
    users = torch.eye(2)
    items = torch.tensor([[0.8, 0.1], [0.1, 0.9], [0.5, 0.1], [0.1, 0.4]])
    untrained = torch.tensor([False, False, True, True])
    train = np.array([[0, 1], [1, 0]])  # each user's training item is masked in their ranking
    data = InteractionData(
        n_users=2,
        n_items=4,
        user_ids=np.array(["a", "b"]),
        item_ids=np.array(["0", "1", "2", "3"]),
        item_texts=["", "", "", ""],
        item_titles=["", "", "", ""],
        train=train,
        val=np.array([[0, 2], [1, 1]]),
        test=np.zeros((0, 2), dtype=np.int64),
        train_weight=np.ones(2, dtype=np.float32),
    )
    return FixedTables(users, items, untrained), data


def test_auto_picks_the_grid_value_with_the_best_val_ndcg() -> None:
    model, data = _case()
    model.train()
    result = calibrate_cold_scale(model, data, grid=[1.0, 1.5, 2.0, 2.5, 3.0], k=1)
    assert result.scale == 2.0 and model.scale == 2.0
    assert model.training  # the mode it came in with is restored
    assert {s: v["all"] for s, v in result.curve.items()} == pytest.approx(
        {1.0: 0.5, 1.5: 0.5, 2.0: 1.0, 2.5: 0.5, 3.0: 0.5}
    )
    # the parts: new-item targets (user 0) and warm-item targets (user 1)
    assert result.curve[2.0]["cold"] == 1.0 and result.curve[1.0]["cold"] == 0.0
    assert result.curve[3.0]["warm"] == 0.0 and result.curve[1.0]["warm"] == 1.0
    m = result.metrics()
    assert m["calib/cold_scale"] == 2.0 and m["calib/val_ndcg@1/scale=2.5"] == 0.5
    assert m["calib/val_cold_ndcg@1/scale=2"] == 1.0


def test_ties_keep_the_smallest_scale() -> None:
    model, data = _case()
    result = calibrate_cold_scale(model, data, grid=[1.8, 1.7, 2.2], k=1)  # all three score 1.0
    assert result.scale == 1.7


def test_bad_grid_is_refused() -> None:
    model, data = _case()
    with pytest.raises(ValueError, match="grid"):
        calibrate_cold_scale(model, data, grid=[0.0, 1.0])


def _data(n_users: int, n_items: int, train: list[list[int]], val: list[list[int]]) -> InteractionData:
    return InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_ids=np.array([str(u) for u in range(n_users)]),
        item_ids=np.array([str(i) for i in range(n_items)]),
        item_texts=[""] * n_items,
        item_titles=[""] * n_items,
        train=np.array(train),
        val=np.array(val),
        test=np.zeros((0, 2), dtype=np.int64),
        train_weight=np.ones(len(train), dtype=np.float32),
    )


def test_max_warm_loss_keeps_the_warm_items() -> None:
    """Four users, NDCG@1. New-item targets: user 0 (0.5 vs a warm 0.8: a hit for s > 1.6), user 1 (0.42 vs
    0.9: s > 2.14), user 3 (0.3 vs 0.8: s > 2.67); user 2's target is warm (0.9 vs a new item at 0.42: lost for
    s > 2.14). Overall: 0.25, 0.25, 0.5, 0.5, 0.75 at s = 1, 1.5, 2, 2.5, 3, so 3.0 wins and user 2 is lost;
    with a 5% warm cap only s <= 2 are allowed, and 2.0 wins."""
    scores = torch.zeros(6, 4)  # item rows: column u is user u's score
    scores[0, [0, 1, 3]] = torch.tensor([0.8, 0.9, 0.8])  # warm competitor of users 0, 1, 3
    scores[1, 2] = 0.9  # user 2's warm target
    scores[2, 0], scores[3, 1], scores[4, 2], scores[5, 3] = 0.5, 0.42, 0.42, 0.3  # new items
    untrained = torch.tensor([False, False, True, True, True, True])
    data = _data(4, 6, train=[[0, 1]], val=[[0, 2], [1, 3], [2, 1], [3, 5]])
    grid = [1.0, 1.5, 2.0, 2.5, 3.0]
    free = calibrate_cold_scale(FixedTables(torch.eye(4), scores, untrained), data, grid, k=1)
    assert free.scale == 3.0 and free.curve[3.0]["warm"] == 0.0
    assert [free.curve[s]["all"] for s in grid] == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.75])
    capped = calibrate_cold_scale(
        FixedTables(torch.eye(4), scores, untrained), data, grid, k=1, max_warm_loss=0.05
    )
    assert capped.scale == 2.0 and capped.curve[2.0]["warm"] == 1.0 and capped.max_warm_loss == 0.05
    with pytest.raises(ValueError, match="max_warm_loss"):
        calibrate_cold_scale(FixedTables(torch.eye(4), scores, untrained), data, grid, k=1, max_warm_loss=1.0)
