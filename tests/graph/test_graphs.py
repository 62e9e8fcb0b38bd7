"""Graph builders: layout, symmetry, normalisation by hand, pruning, kNN exactness and train-only edges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.graph import item_knn
from recsys_gnn.graph.base import GraphBuilder, edges_between, symmetric_graph
from recsys_gnn.graph.hybrid import HybridGraph
from recsys_gnn.graph.item_item import ItemItemGraph, topk_per_row
from recsys_gnn.graph.item_knn import ItemKNNGraph, knn_edges
from recsys_gnn.graph.normalize import sym_norm_weights
from recsys_gnn.graph.user_item import UserItemGraph

CONF = Path(__file__).resolve().parents[2] / "conf" / "graph"

# 2 users, 3 items: u0-{i0, i1}, u1-{i1, i2}. Nodes: u0=0, u1=1, i0=2, i1=3, i2=4.
TINY = np.array([[0, 0], [0, 1], [1, 1], [1, 2]], dtype=np.int64)


def edge_dict(graph) -> dict[tuple[int, int], float]:
    src, dst = graph.edges()
    return {(int(s), int(d)): float(w) for s, d, w in zip(src, dst, graph.edata["w"], strict=True)}


def random_train(n_users: int, n_items: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], axis=1).astype(np.int64)


def all_builders(item_emb_dim: int = 6) -> list[GraphBuilder]:
    return [
        UserItemGraph(),
        UserItemGraph(self_loops=True),
        ItemItemGraph(topk=3),
        ItemItemGraph(weighting="pmi", self_loops=False),
        ItemKNNGraph(k=3),
        HybridGraph(k=2),
    ]


# ---------------------------------------------------------------- sym_norm_weights


def test_sym_norm_weights_matches_dense_formula() -> None:
    rng = np.random.default_rng(0)
    n = 6
    dense = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    dense = np.maximum(dense, dense.T)
    src, dst = np.nonzero(dense)
    d = dense.sum(axis=1)
    expected = dense / np.sqrt(np.outer(d, d))
    got = sym_norm_weights(src, dst, n, dense[src, dst])
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected[src, dst], rtol=1e-6)


def test_sym_norm_weights_zero_degree_gives_zero_not_nan() -> None:
    got = sym_norm_weights(torch.tensor([0, 1]), torch.tensor([1, 0]), 3, torch.tensor([0.0, 0.0]))
    assert torch.equal(got, torch.zeros(2))


@pytest.mark.parametrize(
    ("src", "dst", "n", "w", "match"),
    [
        ([0, 1], [1], 2, None, "equal length"),
        ([0, 5], [1, 0], 2, None, "node ids"),
        ([0, 1], [1, 0], 2, [1.0, -1.0], ">= 0"),
        ([0, 1], [1, 0], 2, [1.0], "shape"),
    ],
)
def test_sym_norm_weights_rejects_bad_input(src, dst, n, w, match) -> None:
    with pytest.raises(ValueError, match=match):
        sym_norm_weights(np.array(src), np.array(dst), n, None if w is None else np.array(w))


# ---------------------------------------------------------------- user-item


def test_user_item_hand_computed_normalisation() -> None:
    g = UserItemGraph().build(TINY, 2, 3)
    assert g.num_nodes() == 5 and g.num_edges() == 8
    r2 = 1 / math.sqrt(2)
    expected = {(0, 2): r2, (0, 3): 0.5, (1, 3): 0.5, (1, 4): r2}
    expected |= {(d, s): w for (s, d), w in expected.items()}
    got = edge_dict(g)
    assert got.keys() == expected.keys()
    for e, w in expected.items():
        assert got[e] == pytest.approx(w, rel=1e-6)
    assert g.ndata["deg"].tolist() == [2, 2, 1, 2, 1]
    assert g.edata["w"].dtype == torch.float32


def test_user_item_self_loops_enter_degree_but_not_deg() -> None:
    g = UserItemGraph(self_loops=True).build(TINY, 2, 3)
    got = edge_dict(g)
    # degrees with loops: u0 3, u1 3, i0 2, i1 3, i2 2
    assert got[(0, 2)] == pytest.approx(1 / math.sqrt(6), rel=1e-6)
    assert got[(0, 3)] == pytest.approx(1 / 3, rel=1e-6)
    assert got[(0, 0)] == pytest.approx(1 / 3, rel=1e-6)
    assert got[(2, 2)] == pytest.approx(1 / 2, rel=1e-6)
    assert g.num_edges() == 8 + 5
    assert g.ndata["deg"].tolist() == [2, 2, 1, 2, 1]


def test_user_item_weighted_hand_computed() -> None:
    g = UserItemGraph(use_weights=True).build(TINY, 2, 3, weight=np.array([1.0, 2.0, 3.0, 4.0]))
    got = edge_dict(g)
    # weighted degrees: u0 3, u1 7, i0 1, i1 5, i2 4
    assert got[(0, 2)] == pytest.approx(1 / math.sqrt(3 * 1), rel=1e-6)
    assert got[(3, 0)] == pytest.approx(2 / math.sqrt(3 * 5), rel=1e-6)
    assert got[(1, 3)] == pytest.approx(3 / math.sqrt(7 * 5), rel=1e-6)
    assert got[(4, 1)] == pytest.approx(4 / math.sqrt(7 * 4), rel=1e-6)


def test_user_item_repeated_pairs_binary_or_summed() -> None:
    dup = np.concatenate([TINY, TINY[:1]])
    assert edge_dict(UserItemGraph().build(dup, 2, 3)) == edge_dict(UserItemGraph().build(TINY, 2, 3))
    g = UserItemGraph(use_weights=True).build(dup, 2, 3, weight=np.ones(5))
    g_ref = UserItemGraph(use_weights=True).build(TINY, 2, 3, weight=np.array([2.0, 1.0, 1.0, 1.0]))
    assert edge_dict(g) == pytest.approx(edge_dict(g_ref))


def test_user_item_needs_weights_when_asked() -> None:
    with pytest.raises(ValueError, match="use_weights"):
        UserItemGraph(use_weights=True).build(TINY, 2, 3)


@pytest.mark.parametrize(
    ("train", "n_users", "n_items", "match"),
    [
        (np.array([0, 1]), 2, 3, "shape"),
        (np.array([[0, 3]]), 2, 3, "item ids"),
        (np.array([[2, 0]]), 2, 3, "user ids"),
        (np.array([[0.0, 1.0]]), 2, 3, "integer"),
    ],
)
def test_builders_reject_bad_train(train, n_users, n_items, match) -> None:
    with pytest.raises(ValueError, match=match):
        UserItemGraph().build(train, n_users, n_items)


# ---------------------------------------------------------------- properties shared by all builders


@pytest.mark.parametrize("builder", all_builders(), ids=repr)
def test_graph_is_symmetric_with_isolated_nodes(builder: GraphBuilder) -> None:
    n_users, n_items = 7, 9
    # user 6 and item 8 have no training interactions
    train = random_train(6, 8, 30, seed=1)
    emb = np.random.default_rng(2).normal(size=(n_items, 6)).astype(np.float32)
    g = builder.build(train, n_users, n_items, item_emb=emb)
    assert g.num_nodes() == builder.num_nodes(n_users, n_items)
    edges = edge_dict(g)
    for (s, d), w in edges.items():
        assert edges[(d, s)] == pytest.approx(w, rel=1e-6)
    assert set(g.ndata) >= {"deg"} and g.edata["w"].shape == (g.num_edges(),)
    assert torch.isfinite(g.edata["w"]).all() and (g.edata["w"] > 0).all()
    # "deg" is the in-degree without self loops
    src, dst = g.edges()
    no_loop_deg = torch.bincount(dst[src != dst], minlength=g.num_nodes())
    assert torch.equal(g.ndata["deg"], no_loop_deg)
    offset = n_users if builder.has_user_nodes else 0
    if builder.has_user_nodes:
        assert g.ndata["deg"][n_users - 1] == 0  # the user with no history exists, unconnected
    if not isinstance(builder, ItemKNNGraph | HybridGraph):
        assert g.ndata["deg"][offset + n_items - 1] == 0  # the item with no history exists, unconnected


@pytest.mark.parametrize("builder", all_builders(), ids=repr)
def test_empty_train_gives_all_nodes(builder: GraphBuilder) -> None:
    emb = np.eye(4, dtype=np.float32)  # orthogonal: cosine 0, so no kNN edges either
    g = builder.build(np.zeros((0, 2), np.int64), 3, 4, item_emb=emb)
    assert g.num_nodes() == builder.num_nodes(3, 4)
    assert int(g.ndata["deg"].sum()) == 0


# ---------------------------------------------------------------- item-item


def test_topk_per_row_keeps_largest_and_breaks_ties_by_column() -> None:
    rows = np.array([0, 0, 0, 1, 1, 2])
    cols = np.array([3, 1, 2, 2, 0, 1])
    vals = np.array([1.0, 5.0, 5.0, 2.0, 3.0, 1.0])
    r, c, v = topk_per_row(rows, cols, vals, 2)
    assert list(zip(r.tolist(), c.tolist(), v.tolist(), strict=True)) == [
        (0, 1, 5.0),
        (0, 2, 5.0),
        (1, 0, 3.0),
        (1, 2, 2.0),
        (2, 1, 1.0),
    ]


def test_item_item_topk_pruning_and_max_symmetrisation() -> None:
    # counts: C01=3, C02=1, C03=1, C12=1; with topk=1 every item keeps one neighbour:
    # 0->1, 1->0, 2->0 (tie with 1, smaller id wins), 3->0; so 1-2 disappears.
    train = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0], [2, 1], [3, 0], [3, 3]])
    g = ItemItemGraph(weighting="count", topk=1, self_loops=False).build(train, 4, 4)
    got = edge_dict(g)
    assert set(got) == {(0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0)}
    # weighted degrees: item0 3+1+1=5, item1 3, item2 1, item3 1
    assert got[(0, 1)] == pytest.approx(3 / math.sqrt(15), rel=1e-6)
    assert got[(0, 2)] == pytest.approx(1 / math.sqrt(5), rel=1e-6)
    full = ItemItemGraph(weighting="count", topk=10, self_loops=False).build(train, 4, 4)
    assert (1, 2) in edge_dict(full)


# u0: {0, 1}, u1: {0, 1, 2}, u2: {2}; n_i = 2 for every item, N = 3 users; C01 = 2, C02 = 1, C12 = 1.
COOC = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 2]])


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [
        ("count", {(0, 1): 2.0, (0, 2): 1.0, (1, 2): 1.0}),
        ("cosine", {(0, 1): 1.0, (0, 2): 0.5, (1, 2): 0.5}),
        # log(2*3/4) > 0 kept; log(1*3/4) < 0 dropped
        ("pmi", {(0, 1): math.log(1.5)}),
    ],
)
def test_item_item_weightings_by_hand(weighting: str, expected: dict) -> None:
    builder = ItemItemGraph(weighting=weighting, topk=5, self_loops=False)
    r, c, v = builder.pruned_edges(COOC, 3, 3)
    got = {(int(a), int(b)): float(x) for a, b, x in zip(r, c, v, strict=True)}
    expected = expected | {(b, a): x for (a, b), x in expected.items()}
    assert got == pytest.approx(expected)
    g = builder.build(COOC, 3, 3)
    if weighting == "cosine":
        # degrees 1.5, 1.5, 1.0
        assert edge_dict(g)[(0, 1)] == pytest.approx(1 / 1.5, rel=1e-6)
        assert edge_dict(g)[(0, 2)] == pytest.approx(0.5 / math.sqrt(1.5), rel=1e-6)
    if weighting == "pmi":
        assert g.ndata["deg"].tolist() == [1, 1, 0]


def test_item_item_min_count_and_block_size_invariance() -> None:
    g = ItemItemGraph(weighting="count", min_count=2, self_loops=False).build(COOC, 3, 3)
    assert set(edge_dict(g)) == {(0, 1), (1, 0)}
    train = random_train(30, 25, 200, seed=3)
    one = edge_dict(ItemItemGraph(topk=4, batch_size=1).build(train, 30, 25))
    big = edge_dict(ItemItemGraph(topk=4, batch_size=1000).build(train, 30, 25))
    assert one == pytest.approx(big)


# ---------------------------------------------------------------- item kNN


@pytest.mark.parametrize("block_elements", [item_knn.MAX_BLOCK_ELEMENTS, 50])
def test_knn_matches_brute_force(monkeypatch: pytest.MonkeyPatch, block_elements: int) -> None:
    # a small block forces several column chunks per row batch, exercising the running top-k merge
    monkeypatch.setattr(item_knn, "MAX_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(60, 8)).astype(np.float32) + 0.3
    k = 5
    src, dst, w = knn_edges(emb, k, batch_size=7)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    expected = {}
    for i in range(len(emb)):
        for j in np.argsort(-sims[i])[:k]:
            if sims[i, j] > 0:
                expected[(i, int(j))] = float(sims[i, j])
    got = {(int(a), int(b)): float(x) for a, b, x in zip(src, dst, w, strict=True)}
    assert got == pytest.approx(expected, abs=1e-5)

    g = ItemKNNGraph(k=k, self_loops=True, batch_size=7).build(
        np.zeros((0, 2), np.int64), 0, 60, item_emb=emb
    )
    und = expected | {(b, a): x for (a, b), x in expected.items()}
    pairs = np.array(sorted(und))
    loops = np.arange(60)
    ref = sym_norm_weights(
        np.r_[pairs[:, 0], loops],
        np.r_[pairs[:, 1], loops],
        60,
        np.r_[[und[tuple(p)] for p in pairs.tolist()], np.ones(60)],
    )
    ref_dict = {
        (int(a), int(b)): float(x)
        for a, b, x in zip(np.r_[pairs[:, 0], loops], np.r_[pairs[:, 1], loops], ref, strict=True)
    }
    assert edge_dict(g) == pytest.approx(ref_dict, abs=1e-5)


def test_knn_clips_negative_cosine_and_connects_items_without_interactions() -> None:
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [-0.3, 1.0], [0.0, 0.0]], dtype=np.float32)
    g = ItemKNNGraph(k=3, self_loops=False).build(np.array([[0, 0]]), 1, 4, item_emb=emb)
    edges = edge_dict(g)
    # cos(0, 2) < 0 so that pair is dropped even though k allows it; item 3 has a zero vector
    assert set(edges) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    assert g.ndata["deg"].tolist() == [1, 2, 1, 0]


def test_knn_k_larger_than_items_is_capped() -> None:
    emb = np.abs(np.random.default_rng(5).normal(size=(4, 3))).astype(np.float32)
    g = ItemKNNGraph(k=50, self_loops=False).build(np.zeros((0, 2), np.int64), 0, 4, item_emb=emb)
    assert g.num_edges() == 12  # complete graph on 4 nodes


@pytest.mark.parametrize("builder_cls", [ItemKNNGraph, HybridGraph])
def test_knn_builders_need_item_emb(builder_cls) -> None:
    with pytest.raises(ValueError, match="item_emb"):
        builder_cls().build(TINY, 2, 3)
    with pytest.raises(ValueError, match="item_emb"):
        builder_cls().build(TINY, 2, 3, item_emb=np.zeros((4, 2), np.float32))


# ---------------------------------------------------------------- hybrid


def test_hybrid_combines_user_item_and_offset_knn_edges() -> None:
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    g = HybridGraph(k=1, knn_weight=2.0).build(TINY, 2, 3, item_emb=emb)
    assert g.num_nodes() == 5
    got = edge_dict(g)
    # kNN (k=1): 0->1 (0.8), 1->0 (0.8; ties lose to larger cosine 0.8 vs 0.6), 2->1 (0.6)
    ui = {(0, 2), (0, 3), (1, 3), (1, 4)}
    ii = {(2, 3), (4, 3)}
    und = ui | ii
    assert set(got) == und | {(d, s) for s, d in und}
    raw = {(0, 2): 1.0, (0, 3): 1.0, (1, 3): 1.0, (1, 4): 1.0, (2, 3): 2.0 * 0.8, (4, 3): 2.0 * 0.6}
    pairs = list(raw) + [(d, s) for s, d in raw]
    w = [raw[p] for p in raw] * 2
    ref = sym_norm_weights(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), 5, np.array(w))
    for p, x in zip(pairs, ref.tolist(), strict=True):
        assert got[p] == pytest.approx(x, rel=1e-5)


def test_hybrid_reaches_items_without_interactions() -> None:
    emb = np.random.default_rng(6).normal(size=(5, 4)).astype(np.float32) + 1.0
    g = HybridGraph(k=2).build(TINY, 2, 5, item_emb=emb)
    # items 3 and 4 have no training pairs but get kNN edges
    assert (g.ndata["deg"][2 + 3 :] > 0).all()


# ---------------------------------------------------------------- leaks


@pytest.mark.parametrize(
    "builder", [UserItemGraph(), UserItemGraph(self_loops=True), HybridGraph(k=3)], ids=repr
)
def test_graph_has_no_edge_for_held_out_pairs(builder: GraphBuilder) -> None:
    n_users, n_items = 15, 20
    rng = np.random.default_rng(7)
    pairs = np.array([(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.3])
    held = rng.random(len(pairs)) < 0.25
    train, test = pairs[~held], pairs[held]
    emb = rng.normal(size=(n_items, 5)).astype(np.float32)
    g = builder.build(train, n_users, n_items, item_emb=emb)
    assert not edges_between(g, n_users, test).any()
    assert edges_between(g, n_users, train).all()


def test_edges_between_validates_pairs() -> None:
    g = UserItemGraph().build(TINY, 2, 3)
    assert edges_between(g, 2, np.array([[0, 0], [0, 2], [1, 2]])).tolist() == [True, False, True]
    assert edges_between(g, 2, np.zeros((0, 2), np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="item nodes"):
        edges_between(g, 2, np.array([[0, 3]]))
    with pytest.raises(ValueError, match="shape"):
        edges_between(g, 2, np.array([0, 1]))


# ---------------------------------------------------------------- assembly, arguments, configs


def test_symmetric_graph_merges_duplicates_by_max_and_drops_loops_and_zero_weights() -> None:
    g = symmetric_graph(np.array([0, 1, 2, 1]), np.array([1, 0, 2, 2]), 4, np.array([1.0, 3.0, 5.0, 0.0]))
    assert g.num_nodes() == 4
    assert set(edge_dict(g)) == {(0, 1), (1, 0)}
    assert edge_dict(g)[(0, 1)] == pytest.approx(1.0)  # single edge: 3 / sqrt(3 * 3)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: ItemItemGraph(weighting="jaccard"), r"\('count', 'cosine', 'pmi'\)"),
        (lambda: ItemItemGraph(topk=0), "topk"),
        (lambda: ItemItemGraph(min_count=0), "min_count"),
        (lambda: ItemItemGraph(batch_size=0), "batch_size"),
        (lambda: ItemKNNGraph(k=0), "k must"),
        (lambda: ItemKNNGraph(batch_size=0), "batch_size"),
        (lambda: HybridGraph(k=0), "k must"),
        (lambda: HybridGraph(knn_weight=0.0), "knn_weight"),
        (lambda: HybridGraph(knn_weight=float("nan")), "knn_weight"),
    ],
)
def test_invalid_builder_arguments(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize("name", ["user_item", "item_item", "item_knn", "hybrid"])
def test_graph_configs_instantiate(name: str) -> None:
    builder = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert isinstance(builder, GraphBuilder)
    emb = np.random.default_rng(8).normal(size=(3, 4)).astype(np.float32)
    g = builder.build(TINY, 2, 3, item_emb=emb)
    assert g.num_nodes() == builder.num_nodes(2, 3)
