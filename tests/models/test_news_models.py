"""News models on impressions: history users, the impression loss, impression evaluation, CTR and random."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.impressions import ImpressionSamples
from recsys_gnn.eval.news import bootstrap_ci, evaluate_impressions, seen_in_training
from recsys_gnn.models.base import Recommender
from recsys_gnn.models.baselines.ctr import ImpressionCTR, RandomScores, smoothed_ctr
from recsys_gnn.models.history import history_users, impression_loss
from tests.data.test_impressions import _imp
from tests.models.test_baselines import make_data


class _Context:
    def __init__(self, data):
        self.data = data


class _Tables(Recommender):
    """Fixed tables with a trainable item table (for the loss's gradient)."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, similarity: str = "dot") -> None:
        super().__init__()
        self.users = users
        self.items = torch.nn.Parameter(items.clone())
        self.similarity = similarity

    def embed(self):
        return self.users, self.items


def test_history_users_mean_normalise_and_fallback() -> None:
    items = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    fallback = torch.tensor([[9.0, 9.0], [7.0, 7.0], [5.0, 5.0]])
    hist, offsets = torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2])  # rows: {0, 1}, {}, {2}
    out = history_users(items, hist, offsets, fallback, "dot")
    assert torch.allclose(out, torch.tensor([[0.5, 1.0], [7.0, 7.0], [3.0, 4.0]]))
    cos = history_users(items, hist, offsets, fallback, "cosine")
    assert torch.allclose(cos[2], torch.tensor([0.6, 0.8])) and torch.allclose(cos.norm(dim=1), torch.ones(3))


def test_impression_loss_is_the_softmax_over_click_and_its_negatives_with_history_users() -> None:
    users = torch.zeros(2, 2)
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    model = _Tables(users, items)
    imps = [_imp(0, [2, 3], [1, 0], "train", [0, 1]), _imp(1, [1, 3], [1, 0], "val", [0])]
    batch = ImpressionSamples(imps, num_negatives=2, seed=0).__getitems__([0])
    loss, _ = impression_loss(model, batch, kind="softmax", temperature=1.0)
    u = torch.tensor([0.5, 0.5])  # mean of items 0 and 1
    pos, neg = float(u @ items[2]), float(u @ items[3])
    expected = -pos + math.log(math.exp(pos) + 2 * math.exp(neg))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert model.items.grad is not None and model.items.grad[[0, 1, 2, 3]].abs().sum() > 0


def test_evaluate_impressions_scores_history_users_and_new_items() -> None:
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    users = torch.zeros(1, 2)
    imps = [
        _imp(0, [2, 3], [1, 0], "test", [0]),  # history likes dim 0: item 2 first -> AUC 1
        _imp(0, [2, 3], [1, 0], "test", [1]),  # history likes dim 1: item 3 first -> AUC 0
    ]
    res = evaluate_impressions(
        users, items, imps, use_history=True, new_items=np.array([0, 0, 1, 1], bool), ci=True
    )
    assert res["all"]["auc"] == pytest.approx(0.5) and res["all"]["n_impressions"] == 2
    assert res["all"]["mrr"] == pytest.approx(0.75)
    assert res["new"]["auc"] == pytest.approx(0.5)
    assert 0.0 <= res["all"]["auc_ci_low"] <= 0.5 <= res["all"]["auc_ci_high"] <= 1.0
    # without history every candidate ties with the zero user: AUC 1/2, MRR expected (1 + 1/2) / 2
    flat = evaluate_impressions(users, items, imps, use_history=False)
    assert flat["all"]["auc"] == pytest.approx(0.5) and flat["all"]["mrr"] == pytest.approx(0.75)


def test_bootstrap_ci_brackets_the_mean() -> None:
    values = np.random.default_rng(0).random(500)
    lo, hi = bootstrap_ci(values, n_boot=500)
    assert lo < values.mean() < hi and hi - lo < 0.1


def test_ctr_by_hand() -> None:
    imps = [
        _imp(0, [0, 1], [1, 0], "train"),
        _imp(1, [0, 2], [0, 1], "train"),
        _imp(1, [1, 2], [1, 0], "test"),  # not counted
    ]
    ctr, rate = smoothed_ctr(imps, n_items=4, prior=2.0)
    # shows 2, 1, 1, 0; clicks 1, 0, 1, 0; global 2/4
    assert rate == pytest.approx(0.5)
    assert ctr.tolist() == pytest.approx([(1 + 1) / (2 + 2), (0 + 1) / (1 + 2), (1 + 1) / (1 + 2), 0.5])
    data = make_data(n_users=3, n_items=4, cold_item=False)
    data.impressions = imps
    model = ImpressionCTR(_Context(data), prior=2.0)
    u, i = model.embed()
    assert u.shape == (3, 1) and torch.allclose(i[:, 0], ctr)
    res = evaluate_impressions(u, i, [imps[2]], use_history=model.history_users)
    assert res["all"]["auc"] == 0.0  # item 2 (CTR 2/3) outranks the clicked item 1 (1/3)
    with pytest.raises(ConfigError):
        ImpressionCTR(_Context(make_data(n_users=3, n_items=4)))


def test_random_scores_are_seeded() -> None:
    data = make_data(n_users=3, n_items=5)
    a, b = RandomScores(_Context(data), seed=1), RandomScores(_Context(data), seed=1)
    assert torch.equal(a.embed()[1], b.embed()[1]) and a.embed()[1].shape == (5, 1)
    assert not RandomScores.history_users and not RandomScores.trainable


def test_seen_in_training_counts_clicks_and_training_candidates() -> None:
    data = make_data(n_users=3, n_items=6, cold_item=False)
    data.train = np.array([[0, 0], [1, 1]])
    data.impressions = [_imp(0, [2, 3], [0, 1], "train"), _imp(1, [4, 5], [1, 0], "test")]
    assert seen_in_training(data).tolist() == [True, True, True, True, False, False]


def test_lm_content_history_users_are_normalised(tmp_path) -> None:
    from recsys_gnn.models.baselines import LMContent

    assert LMContent.similarity == "cosine"
    items = F.normalize(torch.randn(5, 8), dim=-1)
    out = history_users(items, torch.tensor([0, 1, 2]), torch.tensor([0]), torch.zeros(1, 8), "cosine")
    assert torch.allclose(out.norm(dim=1), torch.ones(1))
