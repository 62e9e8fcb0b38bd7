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
