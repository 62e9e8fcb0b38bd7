"""Cached CSR propagation: hand-computed products, duplicates, edge-weight gradients, caching and devices."""

from __future__ import annotations

import dgl
import dgl.function as fn
import pytest
import torch

from recsys_gnn.graph import spmm
from recsys_gnn.graph.spmm import csr_pair, layer_combination, propagate


def dgl_propagate(graph: dgl.DGLGraph, feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    with graph.local_scope():
        graph.ndata["h"] = feat
        graph.edata["w"] = weight
        graph.update_all(fn.u_mul_e("h", "w", "m"), fn.sum("m", "out"))
        return graph.ndata["out"]


def test_hand_computed_product_and_zero_in_degree() -> None:
    # edges 0->1 (w 2), 2->1 (w 3), 1->0 (w 0.5); node 2 has no incoming edge
    g = dgl.graph((torch.tensor([0, 2, 1]), torch.tensor([1, 1, 0])), num_nodes=3)
    feat = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    w = torch.tensor([2.0, 3.0, 0.5])
    out = propagate(g, feat, w)
    expected = torch.tensor([[1.0, 10.0], [2 * 1 + 3 * 3.0, 2 * 10 + 3 * 30.0], [0.0, 0.0]])
    torch.testing.assert_close(out, expected)


def random_graph(n: int, e: int, seed: int) -> dgl.DGLGraph:
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (e,), generator=gen)
    dst = torch.randint(0, n, (e,), generator=gen)
    return dgl.graph((src, dst), num_nodes=n)


@pytest.mark.parametrize("with_duplicates", [False, True])
def test_matches_dgl_with_gradients_in_features_and_weights(with_duplicates: bool) -> None:
    g = random_graph(30, 200, seed=1)
    if with_duplicates:  # repeat some edges: their weights must add up
        src, dst = g.edges()
        g = dgl.graph((torch.cat([src, src[:50]]), torch.cat([dst, dst[:50]])), num_nodes=30)
    else:
        g = dgl.to_simple(g)
    pair = csr_pair(g, "cpu")
    assert (pair.perm is None) == with_duplicates
    gen = torch.Generator().manual_seed(2)
    feat = torch.randn(30, 5, generator=gen)
    weight = torch.rand(g.num_edges(), generator=gen)
    probe = torch.randn(30, 5, generator=gen)
    grads = {}
    for name, fn_ in (("dgl", dgl_propagate), ("csr", propagate)):
        x, w = feat.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        out = fn_(g, x, w)
        (out * probe).sum().backward()
        grads[name] = (out.detach(), x.grad, w.grad)
    for a, b in zip(grads["csr"], grads["dgl"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_structure_is_cached_per_graph_and_weights_change_per_call() -> None:
    g = random_graph(20, 60, seed=3)
    first = csr_pair(g, "cpu")
    assert csr_pair(g, "cpu") is first
    feat = torch.randn(20, 4)
    w1, w2 = torch.rand(60), torch.rand(60)
    torch.testing.assert_close(propagate(g, feat, w2), dgl_propagate(g, feat, w2))
    torch.testing.assert_close(propagate(g, feat, w1), dgl_propagate(g, feat, w1))
    assert csr_pair(g, "cpu") is first
    g.add_edges(torch.tensor([0]), torch.tensor([1]))  # structure changed in place: rebuilt
    assert csr_pair(g, "cpu") is not first
    w3 = torch.rand(61)
    torch.testing.assert_close(propagate(g, feat, w3), dgl_propagate(g, feat, w3))
    import gc

    gc.collect()  # graphs of earlier tests that are already garbage must not count below
    n_cached = len(spmm._CACHE)
    del g
    gc.collect()
    assert len(spmm._CACHE) == n_cached - 1


def test_bad_shapes_raise() -> None:
    g = random_graph(5, 8, seed=4)
    with pytest.raises(ValueError, match="feat must be"):
        propagate(g, torch.randn(4, 3), torch.rand(8))
    with pytest.raises(ValueError, match="edge_weight must be"):
        propagate(g, torch.randn(5, 3), torch.rand(7))


def test_operator_follows_the_feature_device() -> None:
    """The CSR lives on the features' device; a CPU graph (CPU-only DGL) still propagates device features."""
    devices = ["meta"] if not torch.cuda.is_available() else ["cuda"]
    g = random_graph(10, 30, seed=5)
    for dev in devices:
        if dev == "meta":
            pair = csr_pair(g, dev)
            assert pair.crow.device.type == "meta" and pair.col_t.device.type == "meta"
            assert csr_pair(g, "cpu").crow.device.type == "cpu"
            continue
        feat, w = torch.randn(10, 3), torch.rand(30)
        out = propagate(g, feat.to(dev), w.to(dev))
        assert out.device.type == dev
        torch.testing.assert_close(out.cpu(), dgl_propagate(g, feat, w))


def test_values_are_permuted_once_per_weight_and_again_after_an_in_place_change(monkeypatch) -> None:
    g = random_graph(25, 80, seed=5)
    pair = csr_pair(g, "cpu")
    calls = []
    original = spmm.CSRPair.values
    monkeypatch.setattr(
        spmm.CSRPair, "values", lambda self, w, t=False: calls.append(t) or original(self, w, t)
    )
    feat = torch.randn(25, 3, requires_grad=True)
    w = torch.rand(80)
    h = feat
    for _ in range(3):  # LightGCN's layers share one weight tensor
        h = propagate(g, h, w)
    h.sum().backward()
    assert sorted(calls) == [False, True]  # one permutation per orientation for 3 products and 3 backwards
    expected = dgl_propagate(g, dgl_propagate(g, dgl_propagate(g, feat, w), w), w)
    torch.testing.assert_close(h, expected)
    w.mul_(2.0)  # changed in place: the memo is stale and must not be used
    torch.testing.assert_close(propagate(g, feat, w), dgl_propagate(g, feat, w))
    w_new = torch.rand(80)  # another tensor (e.g. cold_dropout's per-step weights)
    torch.testing.assert_close(propagate(g, feat, w_new), dgl_propagate(g, feat, w_new))
    assert len(calls) == 4 and pair.memo[False][0]() is w_new


def loop_combination(
    graph: dgl.DGLGraph, feat: torch.Tensor, weight: torch.Tensor, coef: list[float]
) -> torch.Tensor:
    out, h = coef[0] * feat, feat
    for c in coef[1:]:
        h = dgl_propagate(graph, h, weight)
        out = out + c * h
    return out


@pytest.mark.parametrize("coef", [[1.0], [0.5, 0.5], [1 / 3] * 3, [0.1, 0.2, 0.3, 0.4]])
@pytest.mark.parametrize("with_duplicates", [False, True])
def test_layer_combination_matches_the_per_layer_loop(coef: list[float], with_duplicates: bool) -> None:
    """The fused Horner chain equals sum_k c_k A^k x (DGL per layer), forward and feature gradient."""
    g = random_graph(25, 150, seed=6)
    if with_duplicates:
        src, dst = g.edges()
        g = dgl.graph((torch.cat([src, src[:40]]), torch.cat([dst, dst[:40]])), num_nodes=25)
    gen = torch.Generator().manual_seed(7)
    feat = torch.randn(25, 6, generator=gen, dtype=torch.float64)
    weight = torch.rand(g.num_edges(), generator=gen, dtype=torch.float64)
    probe = torch.randn(25, 6, generator=gen, dtype=torch.float64)
    got = {}
    for name, fn_ in (("loop", loop_combination), ("fused", layer_combination)):
        x = feat.clone().requires_grad_(True)
        out = fn_(g, x, weight, coef)
        (out * probe).sum().backward()
        got[name] = (out.detach(), x.grad)
    for a, b in zip(got["fused"], got["loop"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    hand = coef[0] * feat  # and by hand, with the dense matrix
    dense = torch.zeros(25, 25, dtype=torch.float64).index_put_(
        (g.edges()[1], g.edges()[0]), weight, accumulate=True
    )
    power = feat
    for c in coef[1:]:
        power = dense @ power
        hand = hand + c * power
    torch.testing.assert_close(got["fused"][0], hand)


def test_layer_combination_with_trainable_weights_falls_back_to_the_loop() -> None:
    g = random_graph(12, 40, seed=8)
    feat = torch.randn(12, 3)
    weight = torch.rand(40, requires_grad=True)
    out = layer_combination(g, feat, weight, [0.5, 0.25, 0.25])
    out.sum().backward()
    assert weight.grad is not None and weight.grad.shape == (40,)
    torch.testing.assert_close(out, loop_combination(g, feat, weight.detach(), [0.5, 0.25, 0.25]))


def test_layer_combination_bad_input_raises() -> None:
    g = random_graph(6, 10, seed=9)
    with pytest.raises(ValueError, match="feat must be"):
        layer_combination(g, torch.randn(5, 2), torch.rand(10), [0.5, 0.5])
    with pytest.raises(ValueError, match="edge_weight must be"):
        layer_combination(g, torch.randn(6, 2), torch.rand(9), [0.5, 0.5])
    with pytest.raises(ValueError, match="at least one"):
        layer_combination(g, torch.randn(6, 2), torch.rand(10), [])
