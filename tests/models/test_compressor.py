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
