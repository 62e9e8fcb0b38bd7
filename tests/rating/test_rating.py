"""Rating prediction (task=rating): head math, metrics, baselines, the data module and the whole job."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.models.base import Recommender
from recsys_gnn.rating.datamodule import RatingDataModule, rating_triples
from recsys_gnn.rating.folds import rating_group_overrides
from recsys_gnn.rating.head import RatingHead
from recsys_gnn.rating.metrics import (
    mae,
    rating_classes,
    rating_metrics,
    rmse,
    save_classification_report,
    to_classes,
)
from recsys_gnn.rating.models import BiasedMF, GlobalMean, RatingModel, UserItemBiases
from recsys_gnn.rating.run import run_rating

REAL_RAW = os.environ.get("RECSYS_GNN_RAW")
RATING = rating_group_overrides()  # ["+rating=default"] until conf/train.yaml lists the rating group
LASTFM_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lastfm"


# --------------------------------------------------------------------------------------------- head


def test_head_output_shapes_for_both_objectives() -> None:
    u, i = torch.randn(7, 16), torch.randn(7, 16)
    cls_head = RatingHead(16, hidden=8, objective="classification")
    reg_head = RatingHead(16, hidden=8, objective="regression")
    assert cls_head(u, i).shape == (7, 5)
    assert reg_head(u, i).shape == (7,)
    ratings, classes = cls_head.predict(cls_head(u, i))
    assert ratings.shape == (7,) and classes.shape == (7,)
    assert classes.dtype == torch.long


def test_head_input_is_u_i_and_their_product() -> None:
    head = RatingHead(2, hidden=3, objective="regression")
    first = head.mlp[0]
    assert first.in_features == 6  # [u, i, u * i]
    with torch.no_grad():
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, 4] = 1.0  # hidden unit 0 reads (u * i)[0]
        head.mlp[-1].weight.zero_()
        head.mlp[-1].weight[0, 0] = 1.0
        head.mlp[-1].bias.zero_()
    u, i = torch.tensor([[2.0, 7.0]]), torch.tensor([[3.0, 5.0]])
    assert head(u, i).tolist() == [6.0]  # u0 * i0


def test_expected_rating_and_argmax_by_hand() -> None:
    head = RatingHead(4, objective="classification")
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0, 1.0]]).clamp(min=1e-12)
    rating, cls = head.predict(probs.log())
    assert rating[0].item() == pytest.approx(0.1 * 1 + 0.2 * 2 + 0.3 * 3 + 0.2 * 4 + 0.2 * 5, abs=1e-5)
    assert rating[1].item() == pytest.approx(5.0, abs=1e-5)
    assert cls.tolist() == [3, 5]


def test_classification_loss_is_cross_entropy_on_rounded_classes() -> None:
    head = RatingHead(4, objective="classification")
    ratings = torch.tensor([4.5, 0.5, 3.49, 5.0, 1.0])
    assert head.target_classes(ratings).tolist() == [4, 0, 2, 4, 0]  # 4.5 -> 5, 0.5 -> 1 (clipped), 3.49 -> 3
    logits = torch.randn(5, 5)
    logp = logits.log_softmax(-1)
    by_hand = -(logp[0, 4] + logp[1, 0] + logp[2, 2] + logp[3, 4] + logp[4, 0]) / 5
    assert head.loss(logits, ratings).item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_regression_loss_is_mse_and_predictions_are_clipped() -> None:
    head = RatingHead(4, objective="regression")
    out = torch.tensor([6.2, 0.3, 2.5, 3.4])
    true = torch.tensor([5.0, 1.0, 2.0, 4.0])
    assert head.loss(out, true).item() == pytest.approx(((1.2**2) + 0.7**2 + 0.5**2 + 0.6**2) / 4, rel=1e-5)
    rating, cls = head.predict(out)
    assert rating.tolist() == pytest.approx([5.0, 1.0, 2.5, 3.4])
    assert cls.tolist() == [5, 1, 3, 3]
    assert float(head.mlp[-1].bias) == pytest.approx(3.0)  # starts at the middle of the scale


@pytest.mark.parametrize(
    "kwargs",
    [{"objective": "ordinal"}, {"scale": (0.5, 5)}, {"scale": (5, 1)}, {"hidden": 0}],
)
def test_head_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        RatingHead(4, **kwargs)


# --------------------------------------------------------------------------------------------- metrics


def test_metrics_against_hand_computed_values() -> None:
    pred = np.array([1.0, 2.0, 3.0, 4.0])
    true = np.array([2.0, 2.0, 5.0, 4.0])
    m = rating_metrics(pred, true, (1, 5))
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert m["mae"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.5)
    # per class F1: 1 -> 0, 2 -> 2/3 (P=1, R=1/2), 3 -> 0, 4 -> 1, 5 -> 0; macro over the 5 classes
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 5)
    assert m["n"] == 4


def test_metrics_use_given_classes_for_a_classifier() -> None:
    pred = np.array([3.4, 3.6])
    true = np.array([3.0, 4.0])
    assert rating_metrics(pred, true, (1, 5))["accuracy"] == 1.0
    assert rating_metrics(pred, true, (1, 5), pred_classes=np.array([4, 3]))["accuracy"] == 0.0


def test_rmse_mae_and_class_rounding() -> None:
    assert rmse(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(math.sqrt(2.5))
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(1.5)
    assert to_classes(np.array([0.5, 1.49, 2.5, 4.5, 7.0]), (1, 5)).tolist() == [1, 1, 3, 5, 5]
    assert rating_classes((1, 5)).tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        rating_metrics(np.array([1.0]), np.array([1.0, 2.0]), (1, 5))


def test_classification_report_files(tmp_path: Path) -> None:
    true = np.array([1.0, 2.0, 2.0, 5.0, 4.0])
    pred = np.array([1, 2, 3, 5, 5])
    report = save_classification_report(true, pred, (1, 5), tmp_path)
    assert (tmp_path / "classification_report.txt").read_text().split()[:4] == [
        "precision",
        "recall",
        "f1-score",
        "support",
    ]
    saved = json.loads((tmp_path / "classification_report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["2"]["recall"] == pytest.approx(0.5) and saved["2"]["precision"] == pytest.approx(1.0)
    assert saved["3"]["support"] == 0 and saved["5"]["precision"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------- baselines


def _bias_matrix(
    n_users: int = 30, n_items: int = 20, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every (user, item) rated ``3 + b_u + b_i`` with zero-mean offsets."""
    rng = np.random.default_rng(seed)
    bu = rng.normal(0, 0.5, n_users)
    bi = rng.normal(0, 0.5, n_items)
    bu -= bu.mean()
    bi -= bi.mean()
    uu, ii = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    r = 3.0 + bu[uu] + bi[ii]
    return (
        torch.as_tensor(uu.ravel()),
        torch.as_tensor(ii.ravel()),
        torch.as_tensor(r.ravel(), dtype=torch.float32),
        torch.as_tensor(bu),
        torch.as_tensor(bi),
    )


def test_global_mean() -> None:
    model = GlobalMean()
    model.fit(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]), torch.tensor([1.0, 2.0, 4.5]))
    assert model(torch.tensor([5, 6]), torch.tensor([0, 9])).tolist() == pytest.approx([2.5, 2.5])


def test_biases_recover_known_offsets() -> None:
    users, items, r, bu, bi = _bias_matrix()
    model = UserItemBiases(30, 20, reg_user=1e-6, reg_item=1e-6, max_iter=500, tol=1e-10)
    model.fit(users, items, r)
    assert float(model.mu) == pytest.approx(3.0, abs=1e-5)
    assert torch.allclose(model.user_bias.double(), bu, atol=1e-3)
    assert torch.allclose(model.item_bias.double(), bi, atol=1e-3)
    assert rmse(model(users, items).numpy(), r.numpy()) < 1e-3


def test_bias_regularisation_shrinks_rare_users_and_leaves_unseen_at_zero() -> None:
    users, items, r, _, _ = _bias_matrix()
    keep = (users != 0) | (items < 2)  # user 0 rated only 2 items
    model = UserItemBiases(31, 20, reg_user=5.0, reg_item=5.0)
    model.fit(users[keep], items[keep], r[keep])
    free = UserItemBiases(31, 20, reg_user=1e-6, reg_item=1e-6, max_iter=500, tol=1e-10)
    free.fit(users[keep], items[keep], r[keep])
    assert abs(float(model.user_bias[0])) < 0.5 * abs(float(free.user_bias[0]))
    assert float(model.user_bias[30]) == 0.0  # no training rating


def test_biased_mf_fits_a_low_rank_matrix_better_than_biases() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    n_u, n_i, k = 40, 30, 2
    p, q = rng.normal(0, 0.8, (n_u, k)), rng.normal(0, 0.8, (n_i, k))
    full = np.clip(3.0 + p @ q.T, 1, 5)
    uu, ii = np.nonzero(rng.random((n_u, n_i)) < 0.6)
    split = rng.random(len(uu)) < 0.8
    u, i = torch.as_tensor(uu), torch.as_tensor(ii)
    r = torch.as_tensor(full[uu, ii], dtype=torch.float32)
    mf = BiasedMF(n_u, n_i, dim=8, reg=0.01)
    mf.fit(u[split], i[split], r[split])
    assert float(mf.mu) == pytest.approx(float(r[split].mean()), abs=1e-5)
    opt = torch.optim.Adam(mf.parameters(), lr=0.05)
    first = None
    for _ in range(300):
        loss = mf.loss(u[split], i[split], r[split])
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.2 * first
    biases = UserItemBiases(n_u, n_i)
    biases.fit(u[split], i[split], r[split])
    with torch.no_grad():
        mf_rmse = rmse(mf.predict(mf(u[~split], i[~split]))[0].numpy(), r[~split].numpy())
    bias_rmse = rmse(biases.predict(biases(u[~split], i[~split]))[0].numpy(), r[~split].numpy())
    assert mf_rmse < 0.7 * bias_rmse


class _TableRecommender(Recommender):
    """Id embeddings only: enough to test :class:`RatingModel` without text or graphs."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)

    def embed(self) -> tuple[Tensor, Tensor]:
        return self.users.weight, self.items.weight


@pytest.mark.parametrize("objective", ["classification", "regression"])
def test_rating_model_uses_the_encoder_embeddings(objective: str) -> None:
    torch.manual_seed(0)
    model = RatingModel(_TableRecommender(5, 6, 4), RatingHead(4, hidden=8, objective=objective))
    users, items = torch.tensor([0, 4, 2]), torch.tensor([5, 0, 0])
    with torch.no_grad():
        state = model.precompute()
        assert torch.equal(model(users, items, state), model(users, items))
        expected = model.head(state[0][users], state[1][items])
        assert torch.equal(model(users, items, state), expected)
    loss = model.loss(users, items, torch.tensor([5.0, 1.0, 3.0]))
    loss.backward()
    assert model.encoder_model.users.weight.grad is not None  # trained end to end through the head
    model.fit(users, items, torch.tensor([5.0, 1.0, 3.0]))
    if objective == "regression":
        assert float(model.head.mlp[-1].bias) == pytest.approx(3.0)


# --------------------------------------------------------------------------------------------- data module


def _tiny_rating_data(with_ratings: bool = True) -> InteractionData:
    pairs = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0]], dtype=np.int64)
    return InteractionData(
        n_users=3,
        n_items=3,
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array(["x", "y", "z"], dtype=object),
        item_texts=["x", "y", "z"],
        item_titles=["x", "y", "z"],
        train=pairs,
        val=np.array([[2, 1]]),
        test=np.array([[2, 2], [0, 2]]),
        train_weight=np.ones(5, dtype=np.float32),
        train_rating=np.array([5, 4, 1, 2, 3], dtype=np.float32) if with_ratings else None,
        val_rating=np.array([4], dtype=np.float32) if with_ratings else None,
        test_rating=np.array([2, 5], dtype=np.float32) if with_ratings else None,
        protocol={"dataset": "tiny"},
    )


def test_datamodule_serves_triples() -> None:
    dm = RatingDataModule(_tiny_rating_data(), batch_size=2, eval_batch_size=10, seed=0)
    batches = list(dm.train_dataloader())
    assert [len(b["user"]) for b in batches] == [2, 2, 1]
    cols = [torch.cat([b[k] for b in batches]).tolist() for k in ("user", "item", "rating")]
    seen = sorted(zip(*cols, strict=True))
    assert seen == [(0, 0, 5.0), (0, 1, 4.0), (1, 1, 1.0), (1, 2, 2.0), (2, 0, 3.0)]
    (test,) = list(dm.test_dataloader())
    assert test["user"].tolist() == [2, 0] and test["rating"].tolist() == [2.0, 5.0]


def test_data_without_ratings_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="task=rating"):
        rating_triples(_tiny_rating_data(with_ratings=False), "train")


# --------------------------------------------------------------------------------------------- the job


@pytest.mark.parametrize(
    "overrides",
    [
        ["rating.model=compressor", "rating.objective=classification"],
        ["rating.model=compressor", "rating.objective=regression", "gnn=lightgcn"],
        ["rating.model=global_mean"],
        ["rating.model=biases"],
        ["rating.model=biased_mf", "rating.mf.dim=8"],
    ],
)
def test_run_rating_fast_dev_run(tiny_env: Path, make_cfg, overrides: list[str]) -> None:
    cfg = make_cfg(["task=rating", *RATING, "compress.dim=16", *overrides])
    val_rmse = run_rating(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert val_rmse == pytest.approx(metrics["val/rmse"])
    for stage in ("val", "test"):
        assert 0.0 <= metrics[f"{stage}/mae"] <= metrics[f"{stage}/rmse"] <= 4.0
        assert 0.0 <= metrics[f"{stage}/accuracy"] <= 1.0 and 0.0 <= metrics[f"{stage}/macro_f1"] <= 1.0
    table = (out / "metrics.md").read_text()
    assert "| rmse |" in table and "- objective:" in table and "- dataset: ml-latest-small" in table
    report = json.loads((out / "classification_report.json").read_text())
    assert set(report) >= {"1", "2", "3", "4", "5", "macro avg"}
    assert (out / "config.yaml").exists() and json.loads((out / "run_info.json").read_text())[
        "seed"
    ] == cfg.seed


def test_run_rating_trains_and_tests_the_best_checkpoint(tiny_env: Path, make_cfg) -> None:
    cfg = make_cfg(
        ["task=rating", *RATING, "compress.dim=16", "rating.epochs=3", "rating.batch_size=128"],
        fast=False,
    )
    run_rating(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fit/epochs"] >= 1
    assert Path((out / "best_checkpoint.txt").read_text()).exists()
    assert "val/rmse" in (out / "csv" / "metrics.csv").read_text()
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["task"] == "rating" and protocol["objective"] == "classification"


def _low_rank_data(n_users: int = 40, n_items: int = 30, seed: int = 0) -> InteractionData:
    """Ratings ``round(clip(3 + p_u . q_i))`` of 70% of the pairs, split 80/10/10 at random."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.9, (n_users, 2)), rng.normal(0, 0.9, (n_items, 2))
    uu, ii = np.nonzero(rng.random((n_users, n_items)) < 0.7)
    pairs = np.stack([uu, ii], 1).astype(np.int64)
    r = np.clip(np.round(3 + (p[uu] * q[ii]).sum(1)), 1, 5).astype(np.float32)
    part = rng.choice(3, size=len(r), p=[0.8, 0.1, 0.1])
    return InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_ids=np.arange(n_users).astype(str).astype(object),
        item_ids=np.arange(n_items).astype(str).astype(object),
        item_texts=[""] * n_items,
        item_titles=[""] * n_items,
        train=pairs[part == 0],
        val=pairs[part == 1],
        test=pairs[part == 2],
        train_weight=np.ones(int((part == 0).sum()), dtype=np.float32),
        train_rating=r[part == 0],
        val_rating=r[part == 1],
        test_rating=r[part == 2],
        protocol={"dataset": "low-rank"},
    )


def _evaluate(model, data: InteractionData, epochs: int = 0) -> dict[str, float]:
    from functools import partial

    import pytorch_lightning as pl

    from recsys_gnn.rating.module import RatingModule

    torch.manual_seed(0)
    dm = RatingDataModule(data, batch_size=64, seed=0)
    model.fit(dm.sets["train"].users, dm.sets["train"].items, dm.sets["train"].ratings)
    module = RatingModule(model, optimizer=partial(torch.optim.Adam, lr=0.05))
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    if epochs:
        trainer.fit(module, datamodule=dm)
    (res,) = trainer.test(module, datamodule=dm, verbose=False)
    assert set(module.predictions["test"]) == {"rating", "class", "true"}
    assert len(module.predictions["test"]["true"]) == len(data.test)
    return res


def test_module_trains_mf_past_the_baselines_on_a_low_rank_matrix() -> None:
    data = _low_rank_data()
    mean = _evaluate(GlobalMean(), data)
    mf = _evaluate(BiasedMF(data.n_users, data.n_items, dim=4, reg=0.01), data, epochs=40)
    assert mf["test/rmse"] < 0.75 * mean["test/rmse"]
    assert mf["test/accuracy"] > mean["test/accuracy"]
    expected = rmse(np.full(len(data.test), data.train_rating.mean()), data.test_rating)
    assert mean["test/rmse"] == pytest.approx(expected, rel=1e-5)


def test_rating_on_a_dataset_without_ratings_is_a_config_error(tmp_path: Path, make_cfg, monkeypatch) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(LASTFM_FIXTURE, raw / "hetrec2011-lastfm-2k")
    monkeypatch.setenv("RECSYS_GNN_RAW", str(raw))
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")  # a fixture, not the official files
    files = "[artists.dat,tags.dat,user_artists.dat,user_taggedartists.dat]"  # the fixture has no user_friends.dat
    cfg = make_cfg(["task=rating", *RATING, "domain=music", "dataset=lastfm", f"dataset.files={files}"])
    with pytest.raises(ConfigError, match="explicit ratings"):
        run_rating(cfg)


def test_rating_settings_errors(tiny_env: Path, make_cfg) -> None:
    without_group = ["task=rating"] if RATING else ["task=rating", "~rating"]
    with pytest.raises(ConfigError, match="`rating` config group"):
        run_rating(make_cfg(without_group))
    with pytest.raises(ConfigError, match="task=rating"):
        run_rating(make_cfg([*RATING]))
    with pytest.raises(ConfigError, match="rating.model"):
        run_rating(make_cfg(["task=rating", *RATING, "rating.model=svdpp"]))


@pytest.mark.skipif(not REAL_RAW, reason="needs RECSYS_GNN_RAW with ml-100k")
def test_real_ml100k_fold1_reads_80000_and_20000(make_cfg) -> None:
    from recsys_gnn.pipeline import load_data

    cfg = make_cfg(["task=rating", "dataset=ml-100k", "dataset.reader.fold=1", "split=official"])
    data = load_data(cfg)
    assert len(data.train) + len(data.val) == 80_000 and len(data.test) == 20_000
    assert len(data.train_rating) == len(data.train) and len(data.test_rating) == 20_000
    assert set(np.unique(data.test_rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_make_optimizer_choices() -> None:
    from omegaconf import OmegaConf

    from recsys_gnn.rating.run import make_optimizer

    params = [nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(
        OmegaConf.create({"optimizer": "sgd", "lr": 5.0, "weight_decay": 0.0, "momentum": 0.9})
    )
    assert isinstance(sgd(params=params), torch.optim.SGD) and sgd(params=params).defaults["momentum"] == 0.9
    adam = make_optimizer(OmegaConf.create({"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0}))
    assert adam(params=params).defaults["lr"] == 0.01
    with pytest.raises(ConfigError, match="rating.optimizer"):
        make_optimizer(OmegaConf.create({"optimizer": "lbfgs", "lr": 1.0, "weight_decay": 0.0}))


def test_fold_summary_mean_and_sample_std() -> None:
    from recsys_gnn.rating.folds import format_results, summarize

    runs = {
        "mf": {
            1: {
                "test/rmse": 0.9,
                "test/mae": 0.7,
                "test/accuracy": 0.4,
                "test/macro_f1": 0.3,
                "fit/epochs": 3.0,
            },
            2: {
                "test/rmse": 1.0,
                "test/mae": 0.8,
                "test/accuracy": 0.5,
                "test/macro_f1": 0.4,
                "fit/epochs": 4.0,
            },
        }
    }
    summary = summarize(runs)
    assert summary["mf"]["rmse"]["mean"] == pytest.approx(0.95)
    assert summary["mf"]["rmse"]["std"] == pytest.approx(math.sqrt(2 * 0.05**2))  # ddof=1
    text = format_results(summary, {"mf": ["rating.model=biased_mf"]}, "cmd", [], seed=7)
    assert "| mf | 0.9500 ± 0.0707 |" in text and "rating.model=biased_mf" in text and "seed: 7" in text
