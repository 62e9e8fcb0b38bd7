"""GNN compressors: shapes, gradients, isolated nodes, argument checks, determinism and a real BPR fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dgl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.graph.user_item import UserItemGraph
from recsys_gnn.models.gnn import GAT, GCN, SAGE, GNNStack, LightGCN
from recsys_gnn.models.gnn.gat_classic import ClassicGAT
from recsys_gnn.models.gnn.sage_classic import ClassicSAGE

CONF = Path(__file__).resolve().parents[2] / "conf" / "gnn"

N_USERS, N_ITEMS = 8, 10
# user 7 and item 9 have no training pairs: isolated nodes 7 and 8 + 9 = 17
ISOLATED = (N_USERS - 1, N_USERS + N_ITEMS - 1)

FACTORIES: dict[str, Callable[..., GNNStack]] = {
    "gcn": lambda dim, layers: GCN(dim, num_layers=layers, activation="tanh", learn_alpha=True),
    "lightgcn": lambda dim, layers: LightGCN(dim, num_layers=layers),
    "gat": lambda dim, layers: GAT(dim, num_layers=layers, attention="additive", num_heads=2),
    "gat_dot": lambda dim, layers: GAT(dim, num_layers=layers, temperature=0.5),
    "gat_mean": lambda dim, layers: GAT(dim, num_layers=layers, prior=False, num_heads=2),
    "sage": lambda dim, layers: SAGE(dim, num_layers=layers, self_weight=0.3),
    "sage_sum": lambda dim, layers: SAGE(dim, num_layers=layers, aggregator="sum", self_weight=0.0),
    "gat_classic": lambda dim, layers: ClassicGAT(dim, num_layers=layers, num_heads=2),
    "sage_classic": lambda dim, layers: ClassicSAGE(dim, num_layers=layers, aggregator="pool"),
}


def toy_train(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs = {(u, i) for u in range(N_USERS - 1) for i in range(N_ITEMS - 1) if rng.random() < 0.45}
    pairs |= {(u, u % (N_ITEMS - 1)) for u in range(N_USERS - 1)}  # every other user/item has an edge
    pairs |= {(i % (N_USERS - 1), i) for i in range(N_ITEMS - 1)}
    return np.array(sorted(pairs), dtype=np.int64)


@pytest.fixture(scope="module")
def graph():
    g = UserItemGraph().build(toy_train(), N_USERS, N_ITEMS)
    assert g.in_degrees()[list(ISOLATED)].tolist() == [0, 0]
    return g


def inputs(graph, dim: int, weighted: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(graph.num_nodes(), dim, generator=gen)
    ew = torch.rand(graph.num_edges(), generator=gen) + 0.1 if weighted else None
    return feat, ew


GRID = pytest.mark.parametrize(
    ("name", "dim", "layers", "weighted"),
    [(n, d, k, w) for n in FACTORIES for d in (8, 64) for k in (1, 3) for w in (False, True)],
)


@GRID
def test_shape_finite_and_graph_untouched(graph, name: str, dim: int, layers: int, weighted: bool) -> None:
    torch.manual_seed(0)
    model = FACTORIES[name](dim, layers)
    feat, ew = inputs(graph, dim, weighted)
    nkeys, ekeys = set(graph.ndata), set(graph.edata)
    out = model(graph, feat, ew)
    assert out.shape == (graph.num_nodes(), dim)
    assert torch.isfinite(out).all()
    assert set(graph.ndata) == nkeys and set(graph.edata) == ekeys


@GRID
def test_gradients_reach_parameters_and_features(
    graph, name: str, dim: int, layers: int, weighted: bool
) -> None:
    torch.manual_seed(0)
    model = FACTORIES[name](dim, layers)
    feat, ew = inputs(graph, dim, weighted)
    feat.requires_grad_(True)
    out = model(graph, feat, ew)
    (out * torch.randn_like(out)).sum().backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@GRID
def test_isolated_nodes_depend_only_on_their_own_feature(
    graph, name: str, dim: int, layers: int, weighted: bool
) -> None:
    torch.manual_seed(0)
    model = FACTORIES[name](dim, layers)
    feat, ew = inputs(graph, dim, weighted)
    feat.requires_grad_(True)
    out = model(graph, feat, ew)
    for node in ISOLATED:
        assert torch.isfinite(out[node]).all()
        (grad,) = torch.autograd.grad(out[node].sum(), feat, retain_graph=True)
        others = torch.ones(graph.num_nodes(), dtype=torch.bool)
        others[node] = False
        assert grad[node].abs().sum() > 0
        assert grad[others].abs().sum() == 0


def test_isolated_nodes_exact_values_gcn_lightgcn(graph) -> None:
    feat, _ = inputs(graph, 8, False)
    iso = list(ISOLATED)
    out = GCN(8, num_layers=3, activation="relu")(graph, feat)
    assert torch.equal(out[iso], feat[iso])  # only the residual path reaches them
    out = LightGCN(8, num_layers=3)(graph, feat)
    torch.testing.assert_close(out[iso], feat[iso] / 4)  # E^(1..3) are 0, mean over 4 layers


def test_lightgcn_matches_dense_propagation(graph) -> None:
    feat, ew = inputs(graph, 8, True)
    src, dst = graph.edges()
    a_hat = torch.zeros(graph.num_nodes(), graph.num_nodes())
    a_hat[dst, src] = ew
    layers = [feat, a_hat @ feat, a_hat @ a_hat @ feat]
    expected = 0.5 * layers[0] + 0.25 * layers[1] + 0.25 * layers[2]
    out = LightGCN(8, num_layers=2, layer_weights=[2.0, 1.0, 1.0])(graph, feat, ew)
    torch.testing.assert_close(out, expected)


def test_gcn_matches_dense_update_rule(graph) -> None:
    feat, _ = inputs(graph, 8, False)
    model = GCN(8, num_layers=2, alpha=0.5, activation="tanh")
    src, dst = graph.edges()
    a_hat = torch.zeros(graph.num_nodes(), graph.num_nodes())
    a_hat[dst, src] = graph.edata["w"]
    h = feat
    for lin in model.linears:
        h = h + 0.5 * torch.tanh(a_hat @ h @ lin.weight.T)
    torch.testing.assert_close(model(graph, feat), h)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_edge_weights_are_used(graph, name: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[name](8, 2)
    feat, ew = inputs(graph, 8, True)
    if name == "gat_mean":
        # a plain softmax over the neighbours: positive weights only mark edges, 0 removes one
        torch.testing.assert_close(model(graph, feat), model(graph, feat, ew))
        cut = ew.clone()
        cut[0] = 0.0
        assert not torch.allclose(model(graph, feat), model(graph, feat, cut))
        return
    assert not torch.allclose(model(graph, feat), model(graph, feat, ew))
    if name == "gat_classic":
        # GAT's softmax already normalises: by default it uses no edge weight (w = 1) unless told to.
        torch.testing.assert_close(model(graph, feat), model(graph, feat, torch.ones_like(ew)))
        model.use_edge_weight = True
    # None falls back to graph.edata["w"]
    torch.testing.assert_close(model(graph, feat), model(graph, feat, graph.edata["w"]))


@pytest.mark.parametrize("aggregator", ["mean", "pool", "gcn", "lstm"])
def test_sage_all_aggregators(graph, aggregator: str) -> None:
    torch.manual_seed(0)
    model = ClassicSAGE(8, num_layers=2, aggregator=aggregator)
    feat, _ = inputs(graph, 8, False)
    feat.requires_grad_(True)
    out = model(graph, feat)
    assert out.shape == feat.shape and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    ("model", "fragments"),
    [
        (GCN(8, num_layers=3, alpha=0.5, dropout=0.1, activation="relu", learn_alpha=True),
         ["num_layers=3", "alpha=0.5", "dropout=0.1", "activation='relu'", "learn_alpha=True"]),
        (LightGCN(8, num_layers=2, layer_weights=[1, 1, 2]), ["num_layers=2", "layer_weights=[1.0, 1.0, 2.0]"]),
        (GAT(16, num_layers=2, attention="additive", temperature=0.5, num_heads=4, prior=False, attn_dropout=0.3,
             negative_slope=0.1),
         ["attention='additive'", "temperature=0.5", "num_heads=4", "prior=False", "attn_dropout=0.3",
          "negative_slope=0.1"]),
        (SAGE(8, num_layers=3, aggregator="sum", self_weight=0.25, backend="dgl"),
         ["num_layers=3", "aggregator='sum'", "self_weight=0.25", "backend='dgl'"]),
        (ClassicGAT(16, num_layers=2, num_heads=4, dropout=0.2, attn_dropout=0.3, residual=False,
                    negative_slope=0.1),
         ["num_heads=4", "dropout=0.2", "attn_dropout=0.3", "residual=False", "negative_slope=0.1"]),
        (ClassicSAGE(8, num_layers=1, aggregator="gcn", dropout=0.2),
         ["num_layers=1", "aggregator='gcn'", "dropout=0.2"]),
    ],
)  # fmt: skip
def test_repr_shows_hyper_parameters(model: GNNStack, fragments: list[str]) -> None:
    text = repr(model)
    assert "dim=" in text
    for frag in fragments:
        assert frag in text


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: GCN(0), "dim"),
        (lambda: GCN(8, num_layers=0), "num_layers"),
        (lambda: GCN(8, alpha=0.0), "alpha"),
        (lambda: GCN(8, dropout=1.0), "dropout"),
        (lambda: GCN(8, activation="gelu"), r"\('none', 'relu', 'tanh'\)"),
        (lambda: LightGCN(8, num_layers=2, layer_weights=[1.0, 1.0]), "num_layers \\+ 1"),
        (lambda: LightGCN(8, num_layers=1, layer_weights=[1.0, -1.0]), ">= 0"),
        (lambda: LightGCN(8, num_layers=1, layer_weights=[0.0, 0.0]), "not all 0"),
        (lambda: GAT(10, num_heads=3), "divisible"),
        (lambda: GAT(8, num_heads=0), "num_heads"),
        (lambda: GAT(8, attn_dropout=-0.1), "attn_dropout"),
        (lambda: GAT(8, negative_slope=-1.0), "negative_slope"),
        (lambda: GAT(8, attention="cosine"), r"\('dot', 'additive'\)"),
        (lambda: GAT(8, temperature=0.0), "temperature"),
        (lambda: GAT(8, temperature=float("inf")), "temperature"),
        (lambda: SAGE(8, aggregator="pool"), r"\('mean', 'sum'\)"),
        (lambda: SAGE(8, self_weight=1.0), "self_weight"),
        (lambda: SAGE(8, num_layers=2.5), "num_layers"),
        (lambda: SAGE(8, backend="sparse"), "backend"),
        (lambda: ClassicGAT(10, num_heads=3), "divisible"),
        (lambda: ClassicGAT(8, negative_slope=-1.0), "negative_slope"),
        (lambda: ClassicSAGE(8, aggregator="max"), r"\('mean', 'pool', 'gcn', 'lstm'\)"),
    ],
)
def test_invalid_arguments_raise(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize("name", list(FACTORIES))
def test_invalid_forward_inputs_raise(graph, name: str) -> None:
    model = FACTORIES[name](8, 1)
    feat, _ = inputs(graph, 8, False)
    with pytest.raises(ValueError, match="feat"):
        model(graph, feat[:, :4])
    with pytest.raises(ValueError, match="feat"):
        model(graph, feat[:-1])
    with pytest.raises(ValueError, match="edge_weight"):
        model(graph, feat, torch.ones(graph.num_edges() + 1))
    g = graph.clone()
    del g.edata["w"]
    if name == "gat_classic":  # attention alone needs no stored weight unless asked to use it
        assert model(g, feat).shape == feat.shape
        model.use_edge_weight = True
    with pytest.raises(ValueError, match='edata\\["w"\\]'):
        model(g, feat)


@pytest.mark.parametrize("name", ["gcn", "gat", "gat_classic", "sage_classic"])
def test_deterministic_under_seed_with_dropout(graph, name: str) -> None:
    kwargs = {
        "gcn": {"dropout": 0.3},
        "gat": {"attn_dropout": 0.3},
        "gat_classic": {"dropout": 0.3, "attn_dropout": 0.3},
        "sage_classic": {"dropout": 0.3},
    }[name]
    cls = {"gcn": GCN, "gat": GAT, "gat_classic": ClassicGAT, "sage_classic": ClassicSAGE}[name]
    feat, _ = inputs(graph, 8, False)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = cls(8, num_layers=2, **kwargs).train()
        outs.append(model(graph, feat))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.manual_seed(124)
    other = cls(8, num_layers=2, **kwargs).train()
    assert not torch.allclose(outs[0], other(graph, feat))


def test_reset_parameters_redraws_weights() -> None:
    model = ClassicGAT(8, num_layers=1)
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_bpr_training_lowers_loss(graph, name: str) -> None:
    """A few real Adam steps on BPR over dot-product scores of the GNN outputs reduce the loss."""
    torch.manual_seed(0)
    dim, text_dim = 16, 12
    text = torch.randn(graph.num_nodes(), text_dim)  # stand-in for frozen LM features
    proj = torch.nn.Linear(text_dim, dim)
    model = FACTORIES[name](dim, 2)
    train = torch.from_numpy(toy_train())
    users, pos = train[:, 0], train[:, 1]
    neg = torch.randint(0, N_ITEMS, (len(train),), generator=torch.Generator().manual_seed(1))

    def bpr() -> torch.Tensor:
        h = model(graph, proj(text))
        u, i, j = h[users], h[N_USERS + pos], h[N_USERS + neg]
        return -F.logsigmoid((u * i).sum(-1) - (u * j).sum(-1)).mean()

    opt = torch.optim.Adam(list(proj.parameters()) + list(model.parameters()), lr=0.01)
    with torch.no_grad():
        start = bpr().item()
    for _ in range(30):
        opt.zero_grad()
        loss = bpr()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = bpr().item()
    assert end < 0.8 * start, (start, end)


@pytest.mark.parametrize("name", ["gcn", "lightgcn", "gat", "sage", "gat_classic", "sage_classic"])
def test_gnn_configs_instantiate(graph, name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._partial_ is True
    model = instantiate(cfg)(dim=8)
    assert isinstance(model, GNNStack)
    assert model.num_layers == cfg.num_layers
    feat, _ = inputs(graph, 8, False)
    assert model(graph, feat).shape == feat.shape


# -- csr backend (recsys_gnn.graph.spmm) against DGL's update_all -----------------------------------------------
BACKEND_MODELS: dict[str, Callable[[int, int, str], GNNStack]] = {
    "gcn": lambda dim, layers, backend: GCN(
        dim, num_layers=layers, activation="tanh", learn_alpha=True, backend=backend
    ),
    "lightgcn": lambda dim, layers, backend: LightGCN(dim, num_layers=layers, backend=backend),
}


@pytest.mark.parametrize("name", list(BACKEND_MODELS))
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_backend_matches_dgl_outputs_and_gradients(graph, name: str, weighted: bool) -> None:
    feat, ew = inputs(graph, 8, weighted)
    results = {}
    for backend in ("dgl", "csr"):
        torch.manual_seed(0)
        model = BACKEND_MODELS[name](8, 3, backend)
        x = feat.clone().requires_grad_(True)
        out = model(graph, x, ew)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results[backend] = (out.detach(), x.grad.clone(), grads)
    (o_dgl, gx_dgl, gp_dgl), (o_csr, gx_csr, gp_csr) = results["dgl"], results["csr"]
    torch.testing.assert_close(o_csr, o_dgl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_csr, gx_dgl, rtol=1e-5, atol=1e-6)
    for a, b in zip(gp_csr, gp_dgl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # isolated nodes (zero in-degree) keep their input exactly (GCN) / their 1/(K+1) share (LightGCN)
    iso = list(ISOLATED)
    if name == "gcn":
        torch.testing.assert_close(o_csr[iso], feat[iso])
    else:
        torch.testing.assert_close(o_csr[iso], feat[iso] / 4)


def test_backend_is_checked_and_shown() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        GCN(8, backend="sparse")
    with pytest.raises(ValueError, match="backend must be one of"):
        LightGCN(8, backend="cuda")
    assert "backend='csr'" in repr(LightGCN(8))


# -- the LightGCN-style GAT and SAGE ------------------------------------------------------------------------------
def dense(graph, weight: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` matrix with ``A[dst, src] = weight``."""
    src, dst = graph.edges()
    a = torch.zeros(graph.num_nodes(), graph.num_nodes())
    a[dst, src] = weight
    return a


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("heads", [1, 2])
def test_gat_with_uniform_attention_is_lightgcn(graph, weighted: bool, heads: int) -> None:
    feat, ew = inputs(graph, 8, weighted)
    want = LightGCN(8, num_layers=3)(graph, feat, ew)
    # additive attention starts at a = 0 (uniform); dot attention at a huge temperature is uniform too
    additive = GAT(8, num_layers=3, attention="additive", num_heads=heads)
    torch.testing.assert_close(additive(graph, feat, ew), want)
    dot = GAT(8, num_layers=3, temperature=1e9, num_heads=heads)
    torch.testing.assert_close(dot(graph, feat, ew), want)
    # without the prior, uniform attention is the plain mean over the neighbours (D^-1 A)
    mean = GAT(8, num_layers=3, temperature=1e9, prior=False)
    a = dense(graph, torch.ones(graph.num_edges()))
    a = a / a.sum(1, keepdim=True).clamp_min(1)
    layers = [feat, a @ feat, a @ a @ feat, a @ a @ a @ feat]
    torch.testing.assert_close(mean(graph, feat, ew), sum(layers) / 4)


@pytest.mark.parametrize("prior", [True, False])
def test_gat_dot_attention_matches_dense_update_rule(graph, prior: bool) -> None:
    feat, ew = inputs(graph, 8, True)
    temperature = 0.3
    model = GAT(8, num_layers=2, temperature=temperature, prior=prior)
    src, dst = graph.edges()
    w = dense(graph, ew)
    edge = dense(graph, torch.ones(graph.num_edges())) > 0
    h, layers = feat, [feat]
    for _ in range(2):
        hn = F.normalize(h, dim=-1)
        z = (hn @ hn.T) / temperature  # z[i, j] = cos(h_i, h_j) / T
        if prior:
            z = z + w.clamp_min(1e-30).log()
        z = z.masked_fill(~edge, float("-inf"))
        alpha = torch.softmax(z, 1).nan_to_num(0.0)  # rows of isolated nodes are all -inf
        if prior:
            alpha = alpha * w.sum(1, keepdim=True)
        h = alpha @ h
        layers.append(h)
    torch.testing.assert_close(model(graph, feat, ew), sum(layers) / 3)


@pytest.mark.parametrize("name", ["gat", "gat_dot", "gat_mean", "sage", "sage_sum"])
def test_zero_edge_weight_removes_the_edge(graph, name: str) -> None:
    """A weight of 0 (cold dropout) is the same as a graph without that edge; a node that loses every in-edge
    is isolated (finite, only its own features)."""
    torch.manual_seed(0)
    model = FACTORIES[name](8, 2)
    if getattr(model, "attention", None) == "additive":
        with torch.no_grad():  # non-uniform attention
            model.attn_src.normal_()
            model.attn_dst.normal_()
    feat, ew = inputs(graph, 8, True)
    src, dst = graph.edges()
    node = int(dst[0])
    drop = (dst == node) | (src == 3)
    cut = ew.masked_fill(drop, 0.0)
    out = model(graph, feat, cut)
    keep = torch.nonzero(~drop).squeeze(1)
    sub = dgl.edge_subgraph(graph, keep, relabel_nodes=False)
    torch.testing.assert_close(out, model(sub, feat, ew[keep]))
    assert torch.isfinite(out).all()
    lone = FACTORIES[name](8, 2)(graph, feat, torch.zeros_like(ew))  # every edge removed
    want = feat if name.startswith("sage") else feat / 3
    torch.testing.assert_close(lone, want)


def test_gat_additive_attention_is_zero_initialised_and_learns(graph) -> None:
    model = GAT(8, num_layers=2, attention="additive", num_heads=2)
    assert model.attn_src.shape == (2, 2, 4) and model.attn_dst.shape == (2, 2, 4)
    with torch.no_grad():
        model.attn_src.fill_(1.0)
    model.reset_parameters()
    assert model.attn_src.abs().sum() == 0 and model.attn_dst.abs().sum() == 0
    assert list(GAT(8).parameters()) == []  # dot attention has no parameters


def test_gat_rejects_negative_edge_weights(graph) -> None:
    feat, ew = inputs(graph, 8, True)
    with pytest.raises(ValueError, match=">= 0"):
        GAT(8)(graph, feat, -ew)


@pytest.mark.parametrize("g", [0.0, 0.3])
@pytest.mark.parametrize("aggregator", ["mean", "sum"])
def test_sage_matches_dense_update_rule(graph, aggregator: str, g: float) -> None:
    feat, ew = inputs(graph, 8, True)
    model = SAGE(8, num_layers=3, aggregator=aggregator, self_weight=g)
    w = dense(graph, ew)
    has = w.sum(1, keepdim=True) > 0
    if aggregator == "mean":
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    h, layers = feat, [feat]
    for _ in range(3):
        h = torch.where(has, g * h + (1 - g) * (w @ h), h)
        layers.append(h)
    torch.testing.assert_close(model(graph, feat, ew), sum(layers) / 4)
    iso = list(ISOLATED)
    torch.testing.assert_close(model(graph, feat, ew)[iso], feat[iso])  # isolated nodes keep their features


@pytest.mark.parametrize("aggregator", ["mean", "sum"])
def test_sage_csr_backend_matches_dgl(graph, aggregator: str) -> None:
    feat, ew = inputs(graph, 8, True)
    outs, grads = [], []
    for backend in ("csr", "dgl"):
        x = feat.clone().requires_grad_(True)
        out = SAGE(8, num_layers=2, aggregator=aggregator, backend=backend)(graph, x, ew)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append(x.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_inference_mode_matches_no_grad(graph, name: str) -> None:
    """Lightning tests under torch.inference_mode: edge weights computed there (attention, SAGE's mean) are
    inference tensors, which the CSR product must accept."""
    torch.manual_seed(0)
    model = FACTORIES[name](8, 2).eval()
    feat, ew = inputs(graph, 8, True)
    with torch.no_grad():
        want = model(graph, feat, ew)
    for _ in range(2):  # the second call may hit a memo of the first
        with torch.inference_mode():
            got = model(graph, feat, ew)
        torch.testing.assert_close(got, want)
