"""model.item_bias: a learned per-item bias folded into the tables' last column (score = <u, i> + b_i)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.impressions import ImpressionSamples
from recsys_gnn.eval.news import evaluate_impressions
from recsys_gnn.models.baselines.ctr import smoothed_ctr
from recsys_gnn.models.history import history_users, impression_loss
from recsys_gnn.models.item_bias import ItemBias, bias_init, unit_bias_column, with_bias_column
from recsys_gnn.pipeline import build_model, load_data, train
from recsys_gnn.tables import load_tables, save_tables
from tests.data.test_impressions import _imp
from tests.models.test_baselines import make_data
from tests.models.test_news_models import _Tables
from tests.pipeline.test_news import news_env  # noqa: F401 (fixture)


def _model(make_cfg, overrides, similarity="dot"):
    cfg = make_cfg(["compress.dim=8", "gnn=gcn", f"model.similarity={similarity}", *overrides])
    data = load_data(cfg)
    return build_model(cfg, data), data


def test_bias_column_changes_the_ranking_by_hand() -> None:
    users = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    assert (users @ items.T).argmax().item() == 0  # without bias: 1.0 vs 0.5
    u, i = with_bias_column(users, items, torch.tensor([0.0, 1.0]))
    assert u.tolist() == [[1.0, 0.0, 1.0]] and i[:, -1].tolist() == [0.0, 1.0]
    torch.testing.assert_close(u @ i.T, torch.tensor([[1.0, 1.5]]))  # item 1 now first
    assert unit_bias_column(torch.tensor([[2.0, 3.0, 0.7]])).tolist() == [[2.0, 3.0, 1.0]]


def test_history_users_reset_the_bias_column_and_impressions_rank_with_the_bias() -> None:
    # content in the first column, bias in the last; history = item 0 (bias 5)
    items = torch.tensor([[1.0, 5.0], [1.0, 0.0], [0.5, 1.0]])
    fallback = torch.tensor([[0.0, 1.0]])
    u = history_users(items, torch.tensor([0]), torch.tensor([0]), fallback, "dot", item_bias=True)
    assert u.tolist() == [[1.0, 1.0]]  # not [1, 5]: the history's mean bias is no user property
    # candidates 1 (score 1 + 0) and 2 (0.5 + 1); the click on 2 ranks first only with the bias
    imps = [_imp(0, [1, 2], [0, 1], "test", [0])]
    with_bias = evaluate_impressions(fallback, items, imps, item_bias=True)
    assert with_bias["all"]["auc"] == 1.0
    content_only = evaluate_impressions(fallback, items[:, :1], imps)
    assert content_only["all"]["auc"] == 0.0


def test_impression_loss_with_bias_by_hand() -> None:
    items = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 2.0], [-1.0, 0.0, -1.0]])
    model = _Tables(torch.zeros(2, 3), items)
    model.item_bias = True
    imps = [_imp(0, [2, 3], [1, 0], "train", [0, 1])]
    batch = ImpressionSamples(imps, num_negatives=2, seed=0).__getitems__([0])
    loss, _ = impression_loss(model, batch, kind="softmax", temperature=1.0)
    u = torch.tensor([0.5, 0.5])  # mean of items 0 and 1 (content); bias column 1
    pos, neg = float(u @ items[2, :2]) + 2.0, float(u @ items[3, :2]) - 1.0
    assert loss.item() == pytest.approx(-pos + math.log(math.exp(pos) + 2 * math.exp(neg)), rel=1e-5)
    loss.backward()
    assert model.items.grad[[2, 3], -1].abs().sum() > 0  # the biases get gradient
    assert model.items.grad[[0, 1], -1].abs().sum() == 0  # the history's biases do not enter the user


def test_unseen_and_dropped_items_get_the_mean_of_the_trained_biases() -> None:
    bias = ItemBias(torch.tensor([True, True, False, True]), torch.tensor([1.0, 2.0, 9.0, 6.0]))
    assert bias().tolist() == [1.0, 2.0, 3.0, 6.0]
    assert bias(torch.tensor([False, False, False, True])).tolist() == [1.0, 2.0, 1.5, 1.5]
    bias().sum().backward()  # the fill is detached: only the seen items' own terms give gradient
    assert bias.weight.grad.tolist() == [1.0, 1.0, 0.0, 1.0]


def test_bias_init_ctr_and_pop() -> None:
    data = make_data(n_users=3, n_items=4, cold_item=False)
    data.impressions = [_imp(0, [0, 1], [1, 0], "train"), _imp(1, [0, 2], [0, 1], "train")]
    seen = np.array([True, True, True, False])
    ctr = torch.log(smoothed_ctr(data.impressions, 4)[0])
    torch.testing.assert_close(bias_init("ctr", data, seen), ctr - ctr[:3].mean())
    counts = torch.as_tensor(np.bincount(data.train[:, 1], minlength=4), dtype=torch.float32)
    pop = torch.log1p(counts)
    torch.testing.assert_close(bias_init("pop", data, seen), pop - pop[:3].mean())
    assert bias_init("zero", data, seen).tolist() == [0.0] * 4
    data.impressions = None
    with pytest.raises(ConfigError, match="item_bias_init=ctr"):
        bias_init("ctr", data, seen)
    with pytest.raises(ConfigError, match="item_bias_init"):
        bias_init("log", data, seen)


def test_compressor_scores_are_content_plus_bias_and_saved_tables_reproduce_them(
    tiny_env, make_cfg, tmp_path: Path
) -> None:
    model, data = _model(make_cfg, ["model.item_bias=true", "model.item_bias_init=pop"])
    model.eval()
    assert model.proj(model.item_text).shape[1] == 7  # the content part: dim - 1
    with torch.no_grad():
        model.biases.weight.copy_(torch.linspace(-2, 2, data.n_items))
        users, items = model.embed()
        scores = model.score(torch.arange(data.n_users), (users, items))
    assert users.shape == (data.n_users, 8) and items.shape == (data.n_items, 8)  # width = compress.dim
    assert bool((users[:, -1] == 1).all())
    b = model.biases()
    torch.testing.assert_close(items[:, -1], b)
    torch.testing.assert_close(scores, users[:, :-1] @ items[:, :-1].T + b[None, :])
    unseen = ~model.biases.seen
    assert unseen.any(), "the tiny data has items seen only in val/test"
    torch.testing.assert_close(b[unseen], b[~unseen].mean().expand(int(unseen.sum())))
    # the saved tables (what export and serving read) give the same scores
    save_tables(tmp_path / "tables", users, items, data)
    t = load_tables(tmp_path / "tables")
    torch.testing.assert_close(t.user_emb @ t.item_emb.T, scores)
    # a folded-in user (cold users at test) keeps its bias column at 1
    u2, _ = model.fold_in((users, items), torch.tensor([[0, 1], [0, 2]]), data.n_users)
    assert u2[0, -1].item() == 1.0
    torch.testing.assert_close(u2[0, :-1], items[[1, 2], :-1].mean(0))
    assert "item_bias=pop" in repr(model)


def test_bias_gets_gradient_from_the_training_loss(tiny_env, make_cfg) -> None:
    model, data = _model(make_cfg, ["model.item_bias=true"])
    batch = {"user": torch.tensor([0, 1]), "pos": torch.tensor([0, 1]), "neg": torch.tensor([[2], [3]])}
    loss, _ = model.loss(batch, kind="bpr")
    loss.backward()
    grad = model.biases.weight.grad
    assert grad is not None and grad[[0, 1, 2, 3]].abs().sum() > 0


def test_news_default_is_gat_with_the_ctr_initialised_bias(make_cfg) -> None:
    cfg = make_cfg(["domain=news"])
    assert cfg.model.item_bias and cfg.model.item_bias_init == "ctr" and cfg.model.similarity == "dot"
    assert cfg.gnn._target_.endswith(".gat.GAT")
    assert make_cfg(["domain=news", "gnn=lightgcn"]).gnn._target_.endswith(".lightgcn.LightGCN")
    assert not make_cfg([]).model.item_bias and make_cfg([]).model.item_bias_init == "zero"


def test_cosine_with_bias_is_refused(tiny_env, make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"model\.item_bias=true needs model\.similarity=dot"):
        _model(make_cfg, ["model.item_bias=true"], similarity="cosine")


def test_news_run_with_bias_saves_exports_and_serves_with_the_bias(
    news_env: Path,  # noqa: F811
    make_cfg,
) -> None:
    from recsys_gnn.export import export_run
    from recsys_gnn.serve.artifact import Artifact

    cfg = make_cfg(
        ["domain=news", "gnn=lightgcn", "compress.dim=16", "model.item_bias=true", "model.item_bias_init=ctr"]
    )
    train(cfg)
    run = Path(cfg.paths.output_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test_impressions/auc"] <= 1.0
    t = load_tables(run / "tables")
    assert t.user_emb.shape[1] == 16 and bool((t.user_emb[:, -1] == 1).all())
    assert t.item_emb[:, -1].abs().sum() > 0  # ctr-initialised biases
    art = Artifact.load(export_run(run, out=run / "art", latency_args={"repeats": 2, "batch_size": 2}))
    assert art.metadata["item_bias"] is True
    given = t.item_ids[:2]
    query = t.item_emb[:2].mean(0)
    query[-1] = 1.0  # the folded-in user's bias column, as in training's history users
    scores = t.item_emb @ query
    scores[:2] = -math.inf
    recs = art.recommend_for_items(given, k=3)
    assert [r["item"] for r in recs] == [t.item_ids[i] for i in torch.topk(scores, 3).indices.tolist()]
    np.testing.assert_allclose([r["score"] for r in recs], torch.topk(scores, 3).values.numpy(), rtol=1e-5)
    user = art.recommend(t.user_ids[0], k=1, exclude_seen=False)[0]
    assert user["score"] == pytest.approx(float((t.user_emb[0] @ t.item_emb.T).max()), rel=1e-5)
