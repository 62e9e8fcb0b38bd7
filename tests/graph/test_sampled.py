"""Neighbour-sampled LightGCN: exact with every neighbour, unbiased with a fanout, O(sample) inputs only."""

from __future__ import annotations

import dgl
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.graph.sampled import check_fanout, propagate_blocks, sample_blocks, sampled_lightgcn
from recsys_gnn.graph.user_item import UserItemGraph
from recsys_gnn.models.gnn.lightgcn import LightGCN

N_USERS, N_ITEMS = 30, 40


@pytest.fixture(scope="module")
def graph() -> dgl.DGLGraph:
    """A random bipartite user-item graph (normalised weights in ``edata["w"]``); item 39 has no edge."""
    rng = np.random.default_rng(0)
    train = np.stack([rng.integers(0, N_USERS, 300), rng.integers(0, N_ITEMS - 1, 300)], 1)
    return UserItemGraph().build(train, N_USERS, N_ITEMS)


SEEDS = torch.tensor(
    [3, 5, 3, N_USERS, N_USERS + N_ITEMS - 1, 0, N_USERS + 7]
)  # a duplicate, an isolated item


@pytest.mark.parametrize("backend", ["csr", "dgl"])
@pytest.mark.parametrize("layer_weights", [None, [0.0, 1.0, 2.0, 0.5]])
def test_all_neighbours_equals_full_propagation_on_seeds(graph, backend, layer_weights) -> None:
    torch.manual_seed(0)
    gnn = LightGCN(dim=4, num_layers=3, layer_weights=layer_weights).double()
    feat = torch.randn(graph.num_nodes(), 4, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(len(SEEDS), 4, dtype=torch.float64)
    full = gnn(graph, feat)[SEEDS]
    (full_grad,) = torch.autograd.grad((full * probe).sum(), feat)
    asked: list[torch.Tensor] = []

    def feat_of(ids: torch.Tensor) -> torch.Tensor:
        asked.append(ids)
        return feat[ids]

    out = sampled_lightgcn(graph, SEEDS, [-1, None, -1], gnn.coef, feat_of, backend=backend)
    (grad,) = torch.autograd.grad((out * probe).sum(), feat)
    assert out.shape == (len(SEEDS), 4) and len(asked) == 1
    torch.testing.assert_close(out, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, full_grad, rtol=1e-12, atol=1e-12)
    # the isolated item keeps only its layer-0 share
    torch.testing.assert_close(out[4], gnn.coef[0] * feat[SEEDS[4]])


def test_sampled_rows_are_unbiased(graph) -> None:
    """Mean of many draws == full rows within 5 standard errors, while single draws differ."""
    gnn = LightGCN(dim=3, num_layers=2).double()
    feat = torch.randn(graph.num_nodes(), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full = gnn(graph, feat)[SEEDS]
    dgl.seed(0)
    draws = torch.stack(
        [sampled_lightgcn(graph, SEEDS, [2, 3], gnn.coef, feat.__getitem__) for _ in range(600)]
    )  # (R, S, D)
    se = draws.std(0) / len(draws) ** 0.5
    assert float(draws.std(0).max()) > 0.05  # the draws do vary
    assert bool(((draws.mean(0) - full).abs() <= 5 * se + 1e-9).all())


def test_blocks_keep_at_most_fanout_edges_rescaled_and_seeds_first(graph) -> None:
    dgl.seed(0)
    seeds = torch.tensor([N_USERS + 2, 1, 4])
    sampled = sample_blocks(graph, seeds, [2, 3])
    deg = graph.in_degrees()
    for block, w, fanout in zip(sampled.blocks, sampled.weights, [2, 3], strict=True):
        dst_ids = block.dstdata[dgl.NID]
        assert torch.equal(block.srcdata[dgl.NID][: block.num_dst_nodes()], dst_ids)  # dst rows first
        kept = block.in_degrees()
        assert torch.equal(kept, deg[dst_ids].clamp(max=fanout))
        _, dst = block.edges(order="eid")
        # every kept edge of a node with degree d > fanout has weight w * d / fanout
        eid = graph.edge_ids(block.srcdata[dgl.NID][block.edges()[0]], dst_ids[dst])
        want = graph.edata["w"][eid] * (deg[dst_ids[dst]] / kept[dst]).float()
        torch.testing.assert_close(w, want)
    assert torch.equal(sampled.blocks[-1].dstdata[dgl.NID], torch.sort(seeds).values)
    assert torch.equal(sampled.input_nodes[:3], torch.sort(seeds).values)


def test_only_sampled_inputs_are_asked_for() -> None:
    """A small fanout on a larger graph reads E^(0) of far fewer than all nodes."""
    rng = np.random.default_rng(0)
    n_u, n_i = 2000, 2000
    train = np.stack([rng.integers(0, n_u, 20000), rng.integers(0, n_i, 20000)], 1)
    g = UserItemGraph().build(train, n_u, n_i)
    feat = torch.randn(n_u + n_i, 2)
    asked: list[int] = []

    def feat_of(ids: torch.Tensor) -> torch.Tensor:
        asked.append(len(ids))
        return feat[ids]

    out = sampled_lightgcn(g, torch.arange(8), [3, 3], torch.ones(3) / 3, feat_of)
    assert out.shape == (8, 2) and asked[0] <= 8 * (1 + 3) * (1 + 3) < g.num_nodes() / 20


def test_propagate_blocks_checks_shapes(graph) -> None:
    sampled = sample_blocks(graph, SEEDS, [2])
    feat = torch.randn(sampled.input_nodes.numel(), 2)
    with pytest.raises(ValueError, match="coef"):
        propagate_blocks(sampled, feat, torch.ones(3))
    with pytest.raises(ValueError, match="feat"):
        propagate_blocks(sampled, feat[1:], torch.ones(2))
    with pytest.raises(ValueError, match="backend"):
        propagate_blocks(sampled, feat, torch.ones(2), backend="pyg")


def test_check_fanout() -> None:
    assert check_fanout(None, 3) is None
    assert check_fanout(10, 3) == [10, 10, 10]
    assert check_fanout(OmegaConf.create([5, -1]), 2) == [5, -1]
    assert check_fanout([None, 4], 2) == [-1, 4]
    for bad in ([10], [10, 0], [10, -2], [10, 2.5], "10,10", 2.5, True, [True, 1]):
        with pytest.raises(ConfigError, match=r"model\.fanout must be .*num_layers=2") as err:
            check_fanout(bad, 2)
        assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_graph_with_cuda_features(graph) -> None:
    """The graph (and sampling) stays on the CPU; the CSR products run on the features' device."""
    gnn = LightGCN(dim=4, num_layers=2).double()
    feat = torch.randn(graph.num_nodes(), 4, dtype=torch.float64)
    full = gnn(graph, feat)[SEEDS]
    cuda = feat.cuda()
    out = sampled_lightgcn(graph, SEEDS.cuda(), [-1, -1], gnn.coef, lambda ids: cuda[ids.cuda()])
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), full)
