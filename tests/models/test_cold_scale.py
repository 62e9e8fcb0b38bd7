"""GNNCompressor's ``cold_scale``: a factor on the rows of items without a training interaction, folded into
the tables (so evaluation, saved tables and serving rank with it), and its ``auto`` calibration in the job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_gnn.config_check import config_problems
from recsys_gnn.data.errors import ConfigError
from recsys_gnn.eval.cold_calibration import DEFAULT_GRID
from recsys_gnn.eval.ranking import evaluate_full_ranking
from recsys_gnn.pipeline import build_model, load_data, train
from recsys_gnn.tables import load_tables, save_tables

VARIANTS = {
    "default-lightgcn-cosine": [],
    "gcn-dot": ["gnn=gcn", "model.similarity=dot"],
    "dot-item_bias": ["model.similarity=dot", "model.item_bias=true"],
}


def _model(make_cfg, overrides):
    cfg = make_cfg(["compress.dim=8", "split=cold_items", *overrides])
    data = load_data(cfg)
    model = build_model(cfg, data)
    model.eval()
    return model, data


def _untrained(data) -> torch.Tensor:
    return torch.from_numpy(np.bincount(data.train[:, 1], minlength=data.n_items) == 0)


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_scale_multiplies_exactly_the_items_without_training_rows(tiny_env, make_cfg, overrides) -> None:
    model, data = _model(make_cfg, overrides)
    untrained = _untrained(data)
    assert untrained.any() and (~untrained).any()
    assert torch.equal(model.untrained, untrained)
    with torch.no_grad():
        users1, items1 = model.embed()
        model.set_cold_scale(2.5)
        users2, items2 = model.embed()
    assert model.cold_scale == 2.5
    torch.testing.assert_close(users2, users1, rtol=0, atol=0)
    torch.testing.assert_close(items2[~untrained], items1[~untrained], rtol=0, atol=0)
    content = slice(None, -1) if model.item_bias else slice(None)
    torch.testing.assert_close(items2[untrained][:, content], 2.5 * items1[untrained][:, content])
    if model.item_bias:  # the bias column is an offset: not scaled
        torch.testing.assert_close(items2[:, -1], items1[:, -1], rtol=0, atol=0)
    # scores of the scaled items (also after fold-in of cold users) are the unscaled ones times the factor
    hist = torch.tensor([[0, int(untrained.nonzero()[0])], [0, int((~untrained).nonzero()[0])]])
    cache1 = model.fold_in((users1, items1), hist, data.n_users)
    cache2 = model.fold_in((users2, items2), hist, data.n_users)
    torch.testing.assert_close(cache2[1], items2, rtol=0, atol=0)  # item rows kept as stored
    s1, s2 = (
        model.score(torch.arange(1, data.n_users), cache1),
        model.score(torch.arange(1, data.n_users), cache2),
    )
    if not model.item_bias:
        torch.testing.assert_close(s2[:, untrained], 2.5 * s1[:, untrained])
    torch.testing.assert_close(s2[:, ~untrained], s1[:, ~untrained])


def test_training_ignores_the_scale(tiny_env, make_cfg) -> None:
    """Training sees unscaled rows (new items are negatives there); the factor applies outside training."""
    model, data = _model(make_cfg, ["model.cold_scale=2.0"])
    assert model.cold_scale == 2.0 and not model.calibrate_cold
    model.train()
    with torch.no_grad():
        _, train_items = model.embed()
        model.set_cold_scale(1.0)
        _, plain = model.embed()
    torch.testing.assert_close(train_items, plain, rtol=0, atol=0)


def test_default_scale_leaves_every_score_unchanged(tiny_env, make_cfg) -> None:
    model, data = _model(make_cfg, [])
    assert model.cold_scale == 1.0 and not model.calibrate_cold
    hist = torch.tensor([[0, 1], [0, 2]])
    with torch.no_grad():
        cache = model.embed()
        folded = model.fold_in(cache, hist, data.n_users)
        # what the base class gives: the tables normalised once more, users folded in
        base = type(model).__mro__[1].fold_in(model, cache, hist, data.n_users)
    torch.testing.assert_close(folded[0], base[0], rtol=0, atol=0)
    torch.testing.assert_close(folded[1], base[1], rtol=0, atol=0)
    torch.testing.assert_close(cache[1].norm(dim=1), torch.ones(data.n_items))


def test_saved_tables_reproduce_the_scaled_scores(tiny_env, make_cfg, tmp_path: Path) -> None:
    model, data = _model(make_cfg, ["model.cold_scale=1.7"])
    with torch.no_grad():
        cache = model.fold_in(model.embed(), torch.zeros((0, 2), dtype=torch.long), data.n_users)
        scores = model.score(torch.arange(data.n_users), cache)
        users, items = model.embed()
    tables = load_tables(save_tables(tmp_path / "tables", users, items, data))
    torch.testing.assert_close(tables.user_emb @ tables.item_emb.T, scores)
    untrained = _untrained(data)
    torch.testing.assert_close(
        tables.item_emb[untrained].norm(dim=1), torch.full((int(untrained.sum()),), 1.7)
    )


@pytest.mark.parametrize("value", [0, -1.0, "big", float("inf"), True])
def test_bad_values_are_refused(tiny_env, make_cfg, value) -> None:
    with pytest.raises(ConfigError, match="model.cold_scale"):
        _model(make_cfg, [f"model.cold_scale={value}"])
    cfg = make_cfg([f"model.cold_scale={value}"])
    assert any(p.startswith("model.cold_scale=") for p in config_problems(cfg))


@pytest.mark.parametrize("value", ["auto", 1.0, 2, 0.5])
def test_good_values_pass_the_config_check(make_cfg, value) -> None:
    assert not [p for p in config_problems(make_cfg([f"model.cold_scale={value}"])) if "cold_scale" in p]


@pytest.mark.parametrize("value", [1.0, -0.1, "x", True])
def test_bad_max_warm_loss_is_refused(tiny_env, make_cfg, value) -> None:
    overrides = ["model.cold_scale=auto", f"model.cold_scale_max_warm_loss={value}"]
    with pytest.raises(ConfigError, match="model.cold_scale_max_warm_loss"):
        _model(make_cfg, overrides)
    assert any(p.startswith("model.cold_scale_max_warm_loss=") for p in config_problems(make_cfg(overrides)))
    with pytest.raises(ConfigError, match="needs model.cold_scale=auto"):
        _model(make_cfg, ["model.cold_scale=1.5", "model.cold_scale_max_warm_loss=0.05"])
    model, _ = _model(make_cfg, ["model.cold_scale=auto", "model.cold_scale_max_warm_loss=0.05"])
    assert model.cold_scale_max_warm_loss == 0.05 and model.calibrate_cold and model.cold_scale == 1.0


def test_auto_calibrates_after_training_and_the_run_uses_it(tiny_env, make_cfg) -> None:
    """A short real run: the scale is chosen on val after the best checkpoint is loaded, recorded in the
    metrics, and the test metrics and the saved tables are those of the calibrated model."""
    cfg = make_cfg(
        [
            "split=cold_items",
            "compress.dim=8",
            "trainer.max_epochs=2",
            "data.batch_size=256",
            "model.cold_scale=auto",
        ],
        fast=False,
    )
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    scale = metrics["calib/cold_scale"]
    assert scale in DEFAULT_GRID
    curve = {s: metrics[f"calib/val_ndcg@10/scale={s:g}"] for s in DEFAULT_GRID}
    assert metrics[f"calib/val_ndcg@10/scale={scale:g}"] == max(curve.values())
    data = load_data(cfg)
    tables = load_tables(out / "tables")
    untrained = _untrained(data)
    torch.testing.assert_close(
        tables.item_emb[untrained].norm(dim=1),
        torch.full((int(untrained.sum()),), scale),
        rtol=1e-5,
        atol=1e-5,
    )
    # the calibrated val metric and the test metric, recomputed from the saved tables
    for stage, key in (("val", f"calib/val_ndcg@10/scale={scale:g}"), ("test", "test/ndcg@10")):
        got = evaluate_full_ranking(
            lambda u: tables.user_emb[u] @ tables.item_emb.T,
            data.matrix(getattr(data, stage)),
            data.matrix(data.known_for(stage)),
            ks=[10],
        )["ndcg@10"]
        assert got == pytest.approx(metrics[key], abs=1e-6)
