"""GNNCompressor: cold-start dropout of item edges, and scoring items with no interactions from text."""

from __future__ import annotations

import pytest
import torch

from recsys_gnn.pipeline import build_model, load_data


def _model(make_cfg, overrides):
    cfg = make_cfg(["compress.dim=8", *overrides])
    data = load_data(cfg)
    return build_model(cfg, data), data


def test_cold_dropout_removes_edges_of_dropped_items_in_training_only(tiny_env, make_cfg) -> None:
    model, data = _model(make_cfg, ["model.cold_dropout=0.5"])
    src, dst = model.graph.edges()
    model.train()
    torch.manual_seed(0)
    w = model.edge_weight(model.dropped_items())
    assert w is not None and w.shape == (model.graph.num_edges(),)
    cut = (w == 0) & (model.graph.edata["w"] > 0)
    assert cut.any() and (~cut).any()
    # an edge is cut iff one of its ends is a dropped item: every cut edge touches an item node
    is_item = lambda n: n >= data.n_users  # noqa: E731
    assert bool((is_item(src[cut]) | is_item(dst[cut])).all())
    model.eval()
    assert model.dropped_items() is None and model.edge_weight(None) is None


def test_cold_dropout_is_validated(tiny_env, make_cfg) -> None:
    with pytest.raises(ValueError, match="cold_dropout"):
        _model(make_cfg, ["model.cold_dropout=1.0"])


@pytest.mark.parametrize(
    "overrides", [[], ["gnn=gcn", "model.similarity=dot"]], ids=["default-lightgcn-cosine", "gcn-dot"]
)
def test_items_without_edges_are_scored_from_text(tiny_env, make_cfg, overrides) -> None:
    model, data = _model(make_cfg, overrides)
    deg = torch.bincount(torch.as_tensor(data.train[:, 1]), minlength=data.n_items)
    isolated = torch.nonzero(deg == 0).flatten()
    assert len(isolated) > 0, "the fixture should have items that only occur in val/test"
    model.eval()
    with torch.no_grad():
        _, items = model.embed()
        text = model.proj(model.item_text)
    # GCN's residual keeps an isolated item's projected text; LightGCN keeps E^(0) / (K + 1), which cosine
    # scoring normalises back to the direction of the projected text; non-zero and different between items
    want = text[isolated] if "gnn=gcn" in overrides else torch.nn.functional.normalize(text[isolated], dim=-1)
    torch.testing.assert_close(items[isolated], want)
    assert bool((items[isolated].norm(dim=1) > 0).all())


@pytest.mark.parametrize("user_init", ["items", "text", "id"])
def test_mlp_projection_and_cosine_tables(tiny_env, make_cfg, user_init) -> None:
    model, data = _model(
        make_cfg,
        [
            "model.proj_layers=2",
            "model.proj_hidden=16",
            "model.proj_activation=leaky_relu",
            "model.similarity=cosine",
            f"model.user_init={user_init}",
        ],
    )
    assert isinstance(model.proj, torch.nn.Sequential) and model.proj[0].out_features == 16
    model.eval()
    users, items = model.embed()
    assert users.shape == (data.n_users, 8) and items.shape == (data.n_items, 8)
    # cosine: every consumer of embed() (evaluation, export, serving) gets unit rows
    torch.testing.assert_close(items.norm(dim=1), torch.ones(data.n_items))
    torch.testing.assert_close(users.norm(dim=1), torch.ones(data.n_users))
    hist = torch.tensor([[0, 1], [0, 2]])
    u2, _ = model.fold_in((users, items), hist, data.n_users)
    torch.testing.assert_close(u2[0].norm(), torch.tensor(1.0))


def test_item_id_rows_of_cold_dropped_items_are_left_out(tiny_env, make_cfg) -> None:
    model, data = _model(make_cfg, ["model.item_id=true", "model.cold_dropout=0.5"])
    model.train()
    dropped = torch.zeros(data.n_items, dtype=torch.bool)
    dropped[0] = True
    _, with_drop = model.inputs(dropped)
    _, no_drop = model.inputs(None)
    text = model.proj(model.item_text)
    torch.testing.assert_close(with_drop[0], text[0])  # text alone
    torch.testing.assert_close(no_drop[0], text[0] + model.item_emb.weight[0])


def test_unknown_similarity_and_activation_are_refused(tiny_env, make_cfg) -> None:
    with pytest.raises(ValueError, match="similarity"):
        _model(make_cfg, ["model.similarity=euclid"])
    with pytest.raises(ValueError, match="proj_activation"):
        _model(make_cfg, ["model.proj_layers=2", "model.proj_activation=swish"])


def test_contrastive_term_adds_weighted_info_nce_of_final_vs_layer_rows(tiny_env, make_cfg) -> None:
    """With cl_eps=0 the perturbed pass equals the plain one, so the training loss is the base loss plus
    cl_weight times the InfoNCE of final vs layer-1 rows of the batch's unique users and positives."""
    from recsys_gnn.models.losses import info_nce

    model, data = _model(make_cfg, ["model.cl_weight=0.3", "model.cl_eps=0", "model.cl_temperature=0.5"])
    batch = {
        "user": torch.tensor([0, 0, 1]),
        "pos": torch.tensor([2, 2, 5]),
        "neg": torch.tensor([[7], [8], [9]]),
    }
    model.train()
    loss, extra = model.loss(batch, kind="softmax", temperature=0.1)
    users, items, _, _ = model.propagated(None)
    feat = torch.cat([users, items])
    inputs = torch.cat(model.inputs(None))
    layer1 = torch.sparse.mm(_norm_adj(model), inputs)
    u, i = torch.tensor([0, 1]), torch.tensor([2, 5]) + data.n_users
    cl = info_nce(feat[u], layer1[u], 0.5) + info_nce(feat[i], layer1[i], 0.5)
    torch.testing.assert_close(extra["cl_loss"], cl.detach())
    model.eval()
    base, none = model.loss(batch, kind="softmax", temperature=0.1)  # eval: no contrastive term
    assert none == {}
    torch.testing.assert_close(loss, base + 0.3 * cl, atol=1e-5, rtol=1e-5)


def _norm_adj(model) -> torch.Tensor:
    src, dst = model.graph.edges()
    n = model.graph.num_nodes()
    return torch.sparse_coo_tensor(torch.stack([dst, src]), model.graph.edata["w"], (n, n))


def test_contrastive_noise_is_relative_and_fresh_and_eval_is_clean(tiny_env, make_cfg) -> None:
    model, _ = _model(make_cfg, ["model.cl_weight=0.1", "model.cl_eps=0.2", "gnn.num_layers=1"])
    model.train()
    feat = torch.cat(model.inputs(None)).detach()
    clean = model.gnn(model.graph, feat)
    h1 = torch.sparse.mm(_norm_adj(model), feat)
    torch.manual_seed(0)
    noisy, view = model.gnn.perturbed(model.graph, feat, 0.2, 1)
    delta = view - h1
    has = h1.norm(dim=1) > 0
    torch.testing.assert_close(delta[has].norm(dim=1), 0.2 * h1[has].norm(dim=1), atol=1e-5, rtol=1e-4)
    assert bool((torch.sign(delta[has]) * torch.sign(h1[has]) >= 0).all())
    torch.testing.assert_close(noisy - clean, model.gnn.coef[1] * delta)
    assert not torch.allclose(model.gnn.perturbed(model.graph, feat, 0.2, 1)[0], noisy)
    model.eval()
    a, b = model.embed()
    c, d = model.embed()
    assert torch.equal(a, c) and torch.equal(b, d)


def test_contrastive_term_needs_lightgcn_and_a_valid_layer(tiny_env, make_cfg) -> None:
    with pytest.raises(ValueError, match="needs gnn=lightgcn"):
        _model(make_cfg, ["model.cl_weight=0.1", "gnn=gcn"])
    with pytest.raises(ValueError, match="cl_layer"):
        _model(make_cfg, ["model.cl_weight=0.1", "model.cl_layer=5"])


# -- neighbour-sampled training (model.fanout) ------------------------------------------------------------------
def _batch(data, shared: bool) -> dict[str, torch.Tensor]:
    users = torch.as_tensor(data.train[:12, 0])
    batch = {"user": users, "pos": torch.as_tensor(data.train[:12, 1])}
    if shared:
        neg = torch.tensor([0, 5, 9, 5, data.n_items - 1])
        return batch | {"neg": neg, "neg_valid": torch.arange(12)[:, None] % 3 != torch.arange(5)[None] % 2}
    return batch | {
        "neg": torch.randint(0, data.n_items, (12, 3), generator=torch.Generator().manual_seed(0))
    }


@pytest.mark.parametrize(
    ("overrides", "kind", "shared"),
    [
        ([], "softmax", True),  # the default: MLP, user_init=text, cosine, shared negatives
        (
            ["model.similarity=dot", "model.item_bias=true", "model.item_bias_init=pop", "model.user_init=id"]
            + ["model.item_id=true", "model.weight_decay_emb=0.1", "gnn.num_layers=3"],
            "bpr",
            False,
        ),
    ],
    ids=["default", "dot-bias-id-l2"],
)
def test_fanout_all_neighbours_equals_the_full_graph_loss(
    tiny_env, make_cfg, overrides, kind, shared
) -> None:
    """Every fanout -1: the sampled training loss (and its gradients) equals the full-graph one."""
    layers = 3 if "gnn.num_layers=3" in overrides else 2
    losses, grads = [], []
    for fanout in ([], [f"model.fanout=[{','.join(['-1'] * layers)}]"]):
        torch.manual_seed(0)
        model, data = _model(make_cfg, overrides + fanout)
        model.train()
        loss, extra = model.loss(_batch(data, shared), kind=kind, temperature=0.2)
        loss.backward()
        assert extra == {}
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[1], losses[0])
    assert grads[1].keys() == grads[0].keys() and len(grads[0]) > 0
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fanout_training_lowers_the_loss_and_evaluation_stays_exact(tiny_env, make_cfg) -> None:
    import dgl

    torch.manual_seed(0)
    dgl.seed(0)
    model, data = _model(make_cfg, ["model.fanout=2"])
    assert model.fanout == [2, 2]
    full, _ = _model(make_cfg, [])
    batch = _batch(data, shared=True)

    def full_loss() -> float:
        full.load_state_dict(model.state_dict())
        with torch.no_grad():
            return float(full.eval().loss(batch, kind="softmax", temperature=0.2)[0])

    before = full_loss()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(15):
        opt.zero_grad()
        model.train().loss(batch, kind="softmax", temperature=0.2)[0].backward()
        opt.step()
    assert full_loss() < before
    model.eval()
    for a, b in zip(model.embed(), full.embed(), strict=True):  # evaluation propagates the whole graph
        torch.testing.assert_close(a, b)
    assert "fanout=[2, 2]" in repr(model)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["model.fanout=[10]"], r"model\.fanout must be .*num_layers=2"),
        (["model.fanout=[10,0]"], r"model\.fanout must be"),
        (["model.fanout=[10,10]", "gnn=gcn"], r"needs gnn=lightgcn"),
        (["model.fanout=[10,10]", "graph=item_item"], r"graph with user nodes"),
        (["model.fanout=[10,10]", "model.user_init=items"], r"model\.user_init=items"),
        (
            ["model.fanout=[10,10]", "model.cold_dropout=0.2"],
            r"model\.cold_dropout=0\.2; set model\.cold_dropout=0",
        ),
        (["model.fanout=[10,10]", "model.cl_weight=0.1"], r"model\.cl_weight=0\.1; set model\.cl_weight=0"),
        (
            ["model=distill", "gnn=lightgcn", "model.user_init=text", "+model.fanout=[10,10]"],
            r"not supported by model=distill",
        ),
    ],
)
def test_bad_fanout_settings_are_refused(tiny_env, make_cfg, overrides, match) -> None:
    from recsys_gnn.data.errors import ConfigError

    with pytest.raises(ConfigError, match=match) as err:
        _model(make_cfg, overrides)
    assert "\n" not in str(err.value)


def test_fanout_is_refused_on_impression_batches(tiny_env, make_cfg) -> None:
    from recsys_gnn.data.errors import ConfigError
    from recsys_gnn.models.history import impression_loss

    model, data = _model(make_cfg, ["model.fanout=[3,3]"])
    with pytest.raises(ConfigError, match=r"model\.fanout is not supported with data\.sampling=impressions"):
        impression_loss(model.train(), _batch(data, shared=False))
