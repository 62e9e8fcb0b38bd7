"""Impression metrics against hand-computed values, sklearn, and MIND's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score, roc_auc_score

from recsys_gnn.eval.impression import impression_metrics, score_impressions, single_impression_metrics

LOG2_3 = math.log2(3)
LOG2_5 = math.log2(5)


def _mind_mrr(scores: np.ndarray, labels: np.ndarray) -> float:
    """MRR as MIND defines it, for distinct scores: mean of 1/rank over the clicked candidates."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores)] = np.arange(1, len(scores) + 1)
    return float(np.mean(1.0 / ranks[labels == 1]))


def _impression_a() -> tuple[np.ndarray, np.ndarray]:
    # sorted by score: 0.9 (0), 0.5 (1), 0.3 (0), 0.1 (1) -> clicks at ranks 2 and 4
    return np.array([0.9, 0.1, 0.5, 0.3]), np.array([0, 1, 1, 0])


def _impression_b() -> tuple[np.ndarray, np.ndarray]:
    # 12 candidates, scores 12..1; the only click has score 6 -> rank 7
    scores = np.arange(12, 0, -1, dtype=np.float64)
    labels = np.zeros(12, dtype=np.int64)
    labels[6] = 1
    return scores, labels


def test_hand_computed_single_impression() -> None:
    auc, mrr, ndcg5, ndcg10 = single_impression_metrics(*_impression_a())
    # AUC: 4 (click, no-click) pairs; only 0.5 > 0.3 is ordered right -> 1/4
    assert auc == pytest.approx(0.25)
    # MRR: (1/2 + 1/4) / 2 = 0.375
    assert mrr == pytest.approx(0.375)
    # DCG = 1/log2(3) + 1/log2(5); ideal DCG = 1/log2(2) + 1/log2(3)
    expected = (1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3)
    assert expected == pytest.approx(0.650921, abs=1e-6)
    assert ndcg5 == pytest.approx(expected)
    assert ndcg10 == pytest.approx(expected)


def test_hand_computed_average_over_impressions() -> None:
    (sa, ya), (sb, yb) = _impression_a(), _impression_b()
    out = impression_metrics([sa, sb], [ya, yb])
    # impression B: the click outranks the 5 no-clicks at ranks 8..12 of 11 -> AUC 5/11; MRR 1/7;
    # nDCG@5 = 0 (rank 7 is outside the top 5); nDCG@10 = (1/log2(8)) / (1/log2(2)) = 1/3
    ndcg_a = (1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3)
    assert out["auc"] == pytest.approx((0.25 + 5 / 11) / 2)
    assert out["mrr"] == pytest.approx((0.375 + 1 / 7) / 2)
    assert out["ndcg@5"] == pytest.approx((ndcg_a + 0.0) / 2)
    assert out["ndcg@10"] == pytest.approx((ndcg_a + 1 / 3) / 2)
    assert out["n_impressions"] == 2
    assert out["n_skipped"] == 0


def test_ties_use_expected_value_and_ignore_candidate_order() -> None:
    scores, labels = np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])
    auc, mrr, ndcg5, _ = single_impression_metrics(scores, labels.astype(bool))
    # AUC: the click ties one no-click (1/2) and beats the other (1) -> (0.5 + 1) / 2
    assert auc == pytest.approx(0.75)
    # the click is at rank 1 or 2 with probability 1/2 each: MRR = (1 + 1/2) / 2
    assert mrr == pytest.approx(0.75)
    # expected DCG = 0.5 * 1 + 0.5 / log2(3); ideal DCG = 1
    assert ndcg5 == pytest.approx(0.5 + 0.5 / LOG2_3)
    swapped = single_impression_metrics(scores[[1, 0, 2]], labels[[1, 0, 2]].astype(bool))
    assert swapped == pytest.approx((auc, mrr, ndcg5, ndcg5))


def test_constant_scores_give_random_ranking() -> None:
    out = impression_metrics([np.zeros(4)], [np.array([0, 0, 1, 0])])
    # one click uniformly at rank 1..4: MRR = (1 + 1/2 + 1/3 + 1/4) / 4 = 25/48
    assert out["auc"] == pytest.approx(0.5)
    assert out["mrr"] == pytest.approx(25 / 48)
    assert out["ndcg@5"] == pytest.approx((1 + 1 / LOG2_3 + 1 / 2 + 1 / LOG2_5) / 4)


def test_one_class_impressions_are_skipped_and_counted() -> None:
    sa, ya = _impression_a()
    out = impression_metrics(
        [sa, np.array([0.3, 0.2]), np.array([0.1, 0.7, 0.4])],
        [ya, np.array([0, 0]), np.array([1, 1, 1])],
    )
    assert out["n_impressions"] == 1
    assert out["n_skipped"] == 2
    assert out["auc"] == pytest.approx(0.25)
    assert out["mrr"] == pytest.approx(0.375)


def test_all_skipped_gives_nan() -> None:
    out = impression_metrics([np.array([0.1, 0.2])], [np.array([1, 1])])
    assert math.isnan(out["auc"]) and math.isnan(out["ndcg@10"])
    assert out["n_impressions"] == 0 and out["n_skipped"] == 1


def test_agrees_with_sklearn_and_mind_on_random_impressions() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 30))
        labels = rng.integers(0, 2, size=n)
        if labels.min() == labels.max():
            labels[0] = 1 - labels[0]
        tied = rng.integers(0, 4, size=n).astype(np.float64)  # many ties
        auc, _, ndcg5, ndcg10 = single_impression_metrics(tied, labels.astype(bool))
        assert auc == pytest.approx(roc_auc_score(labels, tied))
        # sklearn's ndcg_score averages over tie orderings; for 0/1 labels its gain y equals 2**y - 1
        assert ndcg5 == pytest.approx(ndcg_score(labels[None], tied[None], k=5))
        assert ndcg10 == pytest.approx(ndcg_score(labels[None], tied[None], k=10))
        distinct = rng.permutation(n).astype(np.float64)
        _, mrr, _, _ = single_impression_metrics(distinct, labels.astype(bool))
        assert mrr == pytest.approx(_mind_mrr(distinct, labels))


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="impression 1: candidate 0 has label 2"):
        impression_metrics([np.array([0.1, 0.2]), np.array([0.3])], [np.array([0, 1]), np.array([2])])
    with pytest.raises(ValueError, match="non-finite score nan"):
        impression_metrics([np.array([np.nan, 0.2])], [np.array([0, 1])])
    with pytest.raises(ValueError, match="expected two equal 1-D shapes"):
        impression_metrics([np.array([0.1, 0.2, 0.3])], [np.array([0, 1])])
    with pytest.raises(ValueError, match="2 score arrays for 1 label arrays"):
        impression_metrics([np.zeros(2), np.zeros(2)], [np.array([0, 1])])


def test_score_impressions_uses_dot_products() -> None:
    user_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    item_emb = torch.tensor([[0.9, 0.0], [0.1, 0.5], [0.5, 0.2], [0.3, 0.9]])
    impressions = [
        # user 0 scores = first coordinate: 0.9, 0.1, 0.5, 0.3 -> impression A
        {"user": 0, "candidates": np.array([0, 1, 2, 3]), "labels": np.array([0, 1, 1, 0])},
        # user 1 scores = second coordinate: item 3 (0.9) > item 1 (0.5) > item 0 (0.0); click on item 1
        {"user": 1, "candidates": np.array([0, 3, 1]), "labels": np.array([0, 0, 1]), "split": "test"},
    ]
    out = score_impressions(user_emb, item_emb, impressions)
    # AUC (0.25 + 1/2) / 2; MRR (0.375 + 1/2) / 2
    assert out["auc"] == pytest.approx((0.25 + 0.5) / 2)
    assert out["mrr"] == pytest.approx((0.375 + 0.5) / 2)
    assert out["n_impressions"] == 2
    with pytest.raises(ValueError, match="candidate item index 7 outside"):
        score_impressions(user_emb, item_emb, [{"user": 0, "candidates": np.array([7]), "labels": [1]}])
    with pytest.raises(ValueError, match="user index 2 outside"):
        score_impressions(user_emb, item_emb, [{"user": 2, "candidates": np.array([0]), "labels": [1]}])
