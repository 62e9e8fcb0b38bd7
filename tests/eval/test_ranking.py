"""Full-ranking evaluation: hand cases, masking, ties, skipped users, coverage, batching, DDP-style merging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_gnn.eval.ranking import FullRankingMetric, evaluate_full_ranking, rows_to_dense, top_k_indices

L3 = math.log2(3)


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


# 3 users, 6 items.
# user 0: scores 0.9 .. 0.4 for items 0..5, item 0 masked -> ranking 1,2,3,4,5; targets {1, 3}
# user 1: scores 0.1 .. 0.6, item 5 masked -> ranking 4,3,2,1,0; targets {0, 2}
# user 2: no targets (skipped), its top list must not count for coverage
SCORES = torch.tensor(
    [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.0, 0.0, 0.0, 0.0, 0.9, 0.9]]
)
TARGETS = csr([[1, 3], [0, 2], []], 6)
MASK = csr([[0], [5], []], 6)


def hand_expected() -> dict[str, float]:
    # k=2: user 0 top [1, 2] hits [1, 0]; user 1 top [4, 3] hits [0, 0]
    #   recall (1/2 + 0)/2, precision (1/2 + 0)/2, hit (1 + 0)/2, mrr (1 + 0)/2
    #   ndcg user 0 = 1 / (1 + 1/log2 3) (IDCG over min(2, 2) ranks); user 1 = 0
    # k=3: user 0 top [1, 2, 3] hits [1, 0, 1]; user 1 top [4, 3, 2] hits [0, 0, 1]
    #   recall (2/2 + 1/2)/2 = 0.75, precision (2/3 + 1/3)/2 = 0.5, hit 1, mrr (1 + 1/3)/2
    #   ndcg user 0 = (1 + 1/2) / (1 + 1/log2 3); user 1 = (1/2) / (1 + 1/log2 3)
    # coverage: top-2 lists {1, 2} u {4, 3} = 4 of 6 items; top-3 {1, 2, 3} u {4, 3, 2} = 4 of 6
    idcg = 1 + 1 / L3
    return {
        "recall@2": 0.25,
        "precision@2": 0.25,
        "hit@2": 0.5,
        "mrr@2": 0.5,
        "ndcg@2": (1 / idcg) / 2,
        "coverage@2": 4 / 6,
        "recall@3": 0.75,
        "precision@3": 0.5,
        "hit@3": 1.0,
        "mrr@3": (1 + 1 / 3) / 2,
        "ndcg@3": (1.5 / idcg + 0.5 / idcg) / 2,
        "coverage@3": 4 / 6,
        "n_users": 2,
    }


def test_hand_case_through_metric_and_evaluator() -> None:
    expected = hand_expected()
    metric = FullRankingMetric((2, 3), num_items=6)
    metric.update(SCORES, rows_to_dense(TARGETS, np.arange(3)), rows_to_dense(MASK, np.arange(3)))
    got = {k: v.item() for k, v in metric.compute().items()}
    assert set(got) == set(FullRankingMetric.names((2, 3)))
    assert got == pytest.approx(expected)
    res = evaluate_full_ranking(lambda u: SCORES[u], TARGETS, MASK, ks=(2, 3))
    assert res == pytest.approx(expected)
    assert res["n_users"] == 2 and isinstance(res["n_users"], int)


def test_masked_item_is_never_recommended() -> None:
    # item 3 has by far the highest score for every user but is masked
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(8, 10, generator=g)
    scores[:, 3] = 100.0
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[:, 3] = True
    targets = torch.zeros(8, 10, dtype=torch.bool)
    targets[:, 0] = True
    metric = FullRankingMetric((9,), num_items=10)
    metric.update(scores, targets, mask)
    assert not metric.rec_at_9[3]
    assert metric.compute()["coverage@9"].item() == pytest.approx(9 / 10)
    # with only 2 unmasked items, a top-5 list shows 2 items: coverage counts those, not the masked filler
    mask = torch.tensor([[True, False, True, False, True]])
    metric = FullRankingMetric((5,), num_items=5)
    metric.update(
        torch.tensor([[9.0, 1.0, 8.0, 2.0, 7.0]]), torch.tensor([[False, True, False, False, False]]), mask
    )
    out = metric.compute()
    assert out["coverage@5"].item() == pytest.approx(2 / 5)
    assert out["mrr@5"].item() == pytest.approx(0.5)  # item 3 (score 2) first, target item 1 second


def test_ties_rank_lower_item_index_first() -> None:
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 2.0, 5.0, 2.0]])
    assert top_k_indices(scores, 3).tolist() == [[0, 1, 2], [3, 1, 2]]
    # random scores with many ties agree with a stable full sort
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 4, (64, 30), generator=g).float()
    expect = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :7]
    assert torch.equal(top_k_indices(scores, 7), expect)
    assert top_k_indices(scores[:, :4], 7).shape == (64, 4)  # k capped at the catalogue size


def test_users_without_targets_are_skipped() -> None:
    metric = FullRankingMetric((2,), num_items=6)
    metric.update(SCORES[2:], torch.zeros(1, 6, dtype=torch.bool), torch.zeros(1, 6, dtype=torch.bool))
    out = metric.compute()
    assert out["n_users"].item() == 0 and math.isnan(out["recall@2"].item()) and out["coverage@2"].item() == 0
    res = evaluate_full_ranking(lambda u: SCORES[u], csr([[], [], []], 6), MASK, ks=(2,))
    assert res["n_users"] == 0 and math.isnan(res["ndcg@2"])


def random_problem(n_users: int = 37, n_items: int = 23, seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items))
    mask = sp.csr_matrix(dense < 0.3)
    targets = sp.csr_matrix((dense >= 0.3) & (dense < 0.45))
    scores = torch.from_numpy(rng.integers(0, 5, (n_users, n_items)).astype(np.float32))  # many ties
    return scores, targets, mask


def test_batch_size_does_not_change_results() -> None:
    scores, targets, mask = random_problem()
    one = evaluate_full_ranking(lambda u: scores[u], targets, mask, ks=(1, 5, 10), batch_size=1)
    big = evaluate_full_ranking(
        lambda u: scores[u], targets, mask, ks=(1, 5, 10), batch_size=1000, progress=True
    )
    assert one.keys() == big.keys()
    for k in one:
        assert one[k] == pytest.approx(big[k], rel=1e-12, abs=1e-12), k


def test_merging_disjoint_user_shards_equals_one_metric() -> None:
    scores, targets, mask = random_problem(seed=3)
    t, m = rows_to_dense(targets, np.arange(37)), rows_to_dense(mask, np.arange(37))
    full = FullRankingMetric((3, 7), num_items=23)
    full.update(scores, t, m)
    a, b = FullRankingMetric((3, 7), num_items=23), FullRankingMetric((3, 7), num_items=23)
    a.update(scores[:20], t[:20], m[:20])
    b.update(scores[20:], t[20:], m[20:])
    a.merge_state(b)
    expected, got = full.compute(), a.compute()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-12, atol=1e-12, msg=k)
    # the coverage flags of each shard alone are a strict subset here, so the max-reduction matters
    assert b.compute()["coverage@3"] < expected["coverage@3"]


def test_item_subset_restricts_targets_but_ranks_the_whole_catalogue() -> None:
    # user 0 ranks items 0, 1, 2, 3 (scores 4..1); targets {0 (warm), 3 (cold)}
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    targets, mask = csr([[0, 3]], 4), csr([[]], 4)
    cold = np.array([False, False, False, True])
    cold_res = evaluate_full_ranking(lambda u: scores[u], targets, mask, ks=(2,), item_subset=cold)
    warm_res = evaluate_full_ranking(lambda u: scores[u], targets, mask, ks=(2,), item_subset=~cold)
    # cold: 1 relevant item at rank 4, outside the top 2 (warm items still occupy it)
    assert cold_res["recall@2"] == 0 and cold_res["n_users"] == 1
    # warm: 1 relevant item at rank 1
    assert warm_res["recall@2"] == 1 and warm_res["ndcg@2"] == pytest.approx(1.0)
    # equals evaluating with the targets restricted by hand, on a random problem
    s, t, m = random_problem(seed=5)
    subset = np.random.default_rng(0).random(23) < 0.4
    by_hand = sp.csr_matrix(t.toarray() * subset[None, :])
    assert evaluate_full_ranking(lambda u: s[u], t, m, ks=(5,), item_subset=subset) == pytest.approx(
        evaluate_full_ranking(lambda u: s[u], by_hand, m, ks=(5,))
    )
    with pytest.raises(ValueError, match="item_subset"):
        evaluate_full_ranking(lambda u: s[u], t, m, item_subset=np.ones(5, dtype=bool))


def test_users_argument_evaluates_only_those_users() -> None:
    scores, targets, mask = random_problem(seed=7)
    some = np.array([3, 1, 30, 3])
    res = evaluate_full_ranking(lambda u: scores[u], targets, mask, ks=(5,), users=some)
    keep = np.zeros(37, dtype=bool)
    keep[[1, 3, 30]] = True
    only = sp.csr_matrix(targets.multiply(keep[:, None]))
    assert res == pytest.approx(evaluate_full_ranking(lambda u: scores[u], only, mask, ks=(5,)))
    assert res["n_users"] == 3


def test_bad_inputs_raise() -> None:
    scores, targets, mask = random_problem()
    with pytest.raises(ValueError, match="score_fn returned"):
        evaluate_full_ranking(lambda u: scores[u, :5], targets, mask)
    with pytest.raises(ValueError, match="also masked"):
        evaluate_full_ranking(lambda u: scores[u], targets, targets)
    metric = FullRankingMetric((5,), num_items=23)
    with pytest.raises(ValueError, match="NaN"):
        bad = scores.clone()
        bad[0, 0] = float("nan")
        metric.update(bad, rows_to_dense(targets, np.arange(37)), rows_to_dense(mask, np.arange(37)))


def test_rows_to_dense() -> None:
    m = csr([[0, 2], [], [1]], 3)
    assert rows_to_dense(m, np.array([2, 0])).tolist() == [[False, True, False], [True, False, True]]


@pytest.mark.parametrize("levels", [3, 20, 1000, None])
def test_top_k_fast_path_equals_the_reference_order(levels: int | None) -> None:
    """Against a reference: sort by (score descending, item index ascending), for any amount of ties."""
    gen = torch.Generator().manual_seed(levels or 0)
    scores = torch.randn(200, 57, generator=gen)
    if levels:  # few distinct values: many ties at and inside the cut-off
        scores = torch.randint(0, levels, (200, 57), generator=gen).float()
    items = torch.arange(57).expand(200, 57)
    ref = torch.from_numpy(np.lexsort((items.numpy(), -scores.numpy()), axis=1))
    for k in (1, 5, 10, 56, 57):
        assert torch.equal(top_k_indices(scores, k), ref[:, :k]), k


# -- CSR-row masking against the previous dense implementation -------------------------------------------------
def reference_update(
    metric: FullRankingMetric, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
):
    """The dense-mask ``FullRankingMetric.update`` this module had before CSR-row masking (kept as the oracle)."""
    from recsys_gnn.eval.metrics import METRICS

    targets, mask = targets.bool(), mask.bool()
    if (targets & mask).any():
        raise ValueError(f"{int((targets & mask).sum())} target entries are also masked")
    n_rel = targets.sum(1)
    keep = n_rel > 0
    scores, targets, mask, n_rel = scores[keep], targets[keep], mask[keep], n_rel[keep]
    if len(n_rel) == 0:
        return
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    scores = scores.masked_fill(mask, float("-inf"))
    idx = top_k_indices(scores, metric.ks[-1])
    hits = targets.gather(1, idx)
    unmasked = ~mask.gather(1, idx)
    for k in metric.ks:
        for name, fn in METRICS.items():
            state = f"{name}_at_{k}"
            setattr(metric, state, getattr(metric, state) + fn(hits, n_rel, k).sum())
        rec = getattr(metric, f"rec_at_{k}").clone()
        rec[idx[:, :k][unmasked[:, :k]]] = True
        setattr(metric, f"rec_at_{k}", rec)
    metric.n_users = metric.n_users + len(n_rel)


def random_case(seed: int, b: int = 40, n: int = 50, levels: int = 4):
    """Scores on few levels (many ties, incl. at the cut-off), disjoint targets and masks, empty rows,
    and rows with fewer unmasked items than k."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (b, n), generator=gen).float()
    r = torch.rand(b, n, generator=gen)
    targets, mask = r < 0.1, (r > 0.75)
    targets[:3] = False  # users without targets
    mask[3:5] = True  # almost everything masked
    mask[3:5, :2] = False
    targets[3:5] = False
    targets[3:5, 0] = True
    return scores, targets, mask


REF_WARNING = pytest.mark.filterwarnings(
    "ignore:The ``compute`` method of metric:UserWarning"
)  # oracle's states


@REF_WARNING
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_csr_masking_equals_the_dense_reference(seed: int, form: str) -> None:
    from recsys_gnn.eval.ranking import SparseRows

    scores, targets, mask = random_case(seed)
    fast, ref = FullRankingMetric((1, 5, 20), num_items=50), FullRankingMetric((1, 5, 20), num_items=50)
    for rows in (slice(0, 17), slice(17, 40)):
        t, m = targets[rows], mask[rows]
        if form == "sparse":
            t, m = SparseRows.from_dense(t), SparseRows.from_dense(m)
        fast.update(scores[rows], t, m)
        reference_update(ref, scores[rows], targets[rows], mask[rows])
    got, want = fast.compute(), ref.compute()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)


@REF_WARNING
def test_item_mask_equals_masking_those_columns_densely() -> None:
    scores, targets, mask = random_case(7)
    subset = torch.arange(50) % 3 != 0
    fast, ref = FullRankingMetric((5, 10), num_items=50), FullRankingMetric((5, 10), num_items=50)
    fast.update(scores, targets & subset, mask, item_mask=~subset)
    reference_update(ref, scores, targets & subset, mask | ~subset)
    for key, value in ref.compute().items():
        torch.testing.assert_close(fast.compute()[key], value, rtol=0, atol=0, msg=key)


def test_sparse_rows_helpers() -> None:
    from recsys_gnn.eval.ranking import SparseRows

    dense = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    rows = SparseRows.from_dense(dense)
    assert rows.indptr.tolist() == [0, 2, 2, 5] and rows.indices.tolist() == [0, 2, 1, 2, 3]
    assert torch.equal(rows.to_dense(4), dense)
    assert torch.equal(rows.select(torch.tensor([True, False, True])).to_dense(4), dense[[0, 2]])
    items = torch.tensor([False, True, True, False])
    assert torch.equal(rows.keep_items(items).to_dense(4), dense & items)
    # from_csr drops explicit zeros and merges duplicates
    m = sp.csr_matrix(
        (np.array([1.0, 0.0, 1.0, 1.0]), (np.array([0, 0, 1, 1]), np.array([1, 2, 3, 3]))), shape=(2, 4)
    )
    got = SparseRows.from_csr(m, np.array([1, 0]))
    assert got.indptr.tolist() == [0, 1, 2] and got.indices.tolist() == [3, 1]


def test_nan_scores_are_rejected_with_sparse_rows() -> None:
    from recsys_gnn.eval.ranking import SparseRows

    scores = torch.rand(2, 5)
    scores[1, 4] = float("nan")
    t = SparseRows.from_dense(torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]))
    m = SparseRows.from_dense(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        FullRankingMetric((2,), num_items=5).update(scores, t, m)
    with pytest.raises(ValueError, match="also masked"):
        FullRankingMetric((2,), num_items=5).update(torch.rand(2, 5), t, t)
