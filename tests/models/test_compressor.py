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
    w = model.edge_weight()
    assert w is not None and w.shape == (model.graph.num_edges(),)
    cut = (w == 0) & (model.graph.edata["w"] > 0)
    assert cut.any() and (~cut).any()
    # an edge is cut iff one of its ends is a dropped item: every cut edge touches an item node
    is_item = lambda n: n >= data.n_users  # noqa: E731
    assert bool((is_item(src[cut]) | is_item(dst[cut])).all())
    model.eval()
    assert model.edge_weight() is None


def test_cold_dropout_is_validated(tiny_env, make_cfg) -> None:
    with pytest.raises(ValueError, match="cold_dropout"):
        _model(make_cfg, ["model.cold_dropout=1.0"])


def test_items_without_edges_are_scored_from_text(tiny_env, make_cfg) -> None:
    model, data = _model(make_cfg, [])
    deg = torch.bincount(torch.as_tensor(data.train[:, 1]), minlength=data.n_items)
    isolated = torch.nonzero(deg == 0).flatten()
    assert len(isolated) > 0, "the fixture should have items that only occur in val/test"
    model.eval()
    with torch.no_grad():
        _, items = model.embed()
        text = model.proj(model.item_text)
    # GCN's residual keeps an isolated item's projected text; it is non-zero and differs between items
    torch.testing.assert_close(items[isolated], text[isolated])
    assert bool((items[isolated].norm(dim=1) > 0).all())
