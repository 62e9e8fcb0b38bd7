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
