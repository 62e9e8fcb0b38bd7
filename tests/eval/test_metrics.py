"""Per-user ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from recsys_gnn.eval.metrics import METRICS, hit_at_k, mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)


def t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def test_hand_computed_values() -> None:
    # user 0: top-4 hits [1, 0, 1, 0], 3 relevant; user 1: [0, 0, 0, 1], 1 relevant; user 2: no hit, 2 relevant
    hits = t([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    n_rel = torch.tensor([3, 1, 2])
    # k=3: user 0 has 2 hits, user 1 none (its hit is at rank 4)
    assert recall_at_k(hits, n_rel, 3).tolist() == pytest.approx([2 / 3, 0, 0])
    assert precision_at_k(hits, n_rel, 3).tolist() == pytest.approx([2 / 3, 0, 0])
    assert hit_at_k(hits, n_rel, 3).tolist() == [1, 0, 0]
    # ndcg user 0: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(3, 3) = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at_k(hits, n_rel, 3).tolist() == pytest.approx([1.5 / (1 / L2 + 1 / L3 + 1 / L4), 0, 0])
    assert mrr_at_k(hits, n_rel, 3).tolist() == pytest.approx([1, 0, 0])
    # k=4: user 1 hits at rank 4 -> recall 1/1, precision 1/4, DCG = 1/log2(5), IDCG = 1, MRR = 1/4
    assert recall_at_k(hits, n_rel, 4).tolist() == pytest.approx([2 / 3, 1, 0])
    assert precision_at_k(hits, n_rel, 4).tolist() == pytest.approx([0.5, 0.25, 0])
    assert ndcg_at_k(hits, n_rel, 4)[1].item() == pytest.approx(1 / math.log2(5))
    assert mrr_at_k(hits, n_rel, 4).tolist() == pytest.approx([1, 0.25, 0])


def test_recall_denominator_is_not_capped_at_k_but_ideal_dcg_is() -> None:
    # 5 relevant items, both top-2 are hits: recall = 2/5 (RecBole), NDCG = 1 (ideal list also has 2 hits)
    hits, n_rel = t([[1, 1]]), torch.tensor([5])
    assert recall_at_k(hits, n_rel, 2).item() == pytest.approx(0.4)
    assert ndcg_at_k(hits, n_rel, 2).item() == pytest.approx(1.0)
    # 1 relevant item at rank 2 of a k=2 list: IDCG = 1 (one slot), DCG = 1/log2(3)
    assert ndcg_at_k(t([[0, 1]]), torch.tensor([1]), 2).item() == pytest.approx(1 / L3)


def test_metrics_at_smaller_k_equal_metrics_of_the_truncated_list() -> None:
    g = torch.Generator().manual_seed(0)
    hits = torch.rand(50, 20, generator=g) < 0.2
    n_rel = hits.sum(1) + torch.randint(1, 4, (50,), generator=g)
    for name, fn in METRICS.items():
        for k in (1, 5, 10):
            torch.testing.assert_close(fn(hits, n_rel, k), fn(hits[:, :k], n_rel, k), msg=name)


def test_list_shorter_than_k_when_catalogue_is_small() -> None:
    # 3-item catalogue, k=5: precision still divides by k; the list has only 3 ranks
    hits, n_rel = t([[1, 1, 0]]), torch.tensor([2])
    assert precision_at_k(hits, n_rel, 5).item() == pytest.approx(2 / 5)
    assert ndcg_at_k(hits, n_rel, 5).item() == pytest.approx(1.0)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="hits"):
        recall_at_k(t([[1, 0]]), torch.tensor([1, 2]), 1)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(t([[1, 0]]), torch.tensor([1]), 0)
