"""The generated dataset: reproducible, exact counts, power-law skew, precomputed vectors, and a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.preprocess import preprocess
from recsys_gnn.data.readers.synthetic import SyntheticSpec, generate_interactions, read_synthetic
from recsys_gnn.data.splits import AutoSplit
from recsys_gnn.models.context import ModelContext
from recsys_gnn.pipeline import load_data, train

SMALL = {"n_users": 300, "n_items": 500, "n_interactions": 6000, "text_dim": 16}


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = read_synthetic(**SMALL, seed=3), read_synthetic(**SMALL, seed=3)
    assert a.interactions.equals(b.interactions)
    np.testing.assert_array_equal(a.item_vectors, b.item_vectors)
    c = read_synthetic(**SMALL, seed=4)
    assert not a.interactions[["user", "item"]].equals(c.interactions[["user", "item"]])
    assert not np.array_equal(a.item_vectors, c.item_vectors)


def test_counts_distinct_pairs_and_coverage() -> None:
    spec = SyntheticSpec(**SMALL, seed=1)
    pairs = generate_interactions(spec)
    assert pairs.shape == (6000, 2) and pairs.dtype == np.int64
    assert len(np.unique(pairs[:, 0] * spec.n_items + pairs[:, 1])) == 6000
    assert np.bincount(pairs[:, 1], minlength=spec.n_items).min() >= 1  # every item has a user
    assert np.bincount(pairs[:, 0], minlength=spec.n_users).min() >= 1  # every user has an item
    assert np.median(np.bincount(pairs[:, 0])) >= spec.min_per_user


def test_popularity_and_activity_are_power_law() -> None:
    spec = SyntheticSpec(n_users=2000, n_items=2000, n_interactions=40000, text_dim=4, seed=0)
    pairs = generate_interactions(spec)
    for column, alpha in ((1, spec.item_alpha), (0, spec.user_alpha)):
        counts = np.sort(np.bincount(pairs[:, column]))[::-1].astype(float)
        top = counts[: len(counts) // 10].sum() / counts.sum()
        assert top > 0.2  # uniform would give 0.1
        # slope of log(count) against log(rank) over the head, before min_per_user / coverage floors
        ranks = np.arange(1, 201)
        slope = np.polyfit(np.log(ranks), np.log(counts[:200]), 1)[0]
        assert -1.5 * alpha < slope < -0.4 * alpha, (column, slope)


def test_uniform_when_alpha_is_zero() -> None:
    spec = SyntheticSpec(n_users=500, n_items=500, n_interactions=20000, text_dim=4, item_alpha=0, seed=0)
    counts = np.bincount(generate_interactions(spec)[:, 1])
    assert counts.max() < 3 * counts.mean()


def test_item_vectors_are_unit_and_follow_the_catalogue() -> None:
    raw = read_synthetic(**SMALL, seed=2)
    assert raw.item_vectors.shape == (500, 16) and raw.item_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(raw.item_vectors, axis=1), 1.0, rtol=1e-5)
    # preprocess keeps each item's vector with it, whatever the row order of the items table
    shuffled = raw.items.sample(frac=1.0, random_state=0)
    raw.item_vectors = raw.item_vectors[shuffled.index.to_numpy()]
    raw.items = shuffled.reset_index(drop=True)
    data = preprocess(raw, AutoSplit(seed=0))
    by_id = dict(zip(raw.items["item"], raw.item_vectors, strict=True))
    expected = np.stack([by_id[i] for i in data.item_ids])
    np.testing.assert_array_equal(data.item_vectors, expected)
    assert (data.n_users, data.n_items) == (300, 500)
    assert len(data.train) + len(data.val) + len(data.test) == 6000


def test_context_uses_the_vectors_without_an_encoder() -> None:
    data = preprocess(read_synthetic(**SMALL), AutoSplit(seed=0))

    class NoEncoder:
        def encode(self, texts):
            raise AssertionError("the encoder must not run for a dataset with item vectors")

    ctx = ModelContext(data, encoder=NoEncoder())
    np.testing.assert_array_equal(ctx.item_text_emb, data.item_vectors)


@pytest.mark.parametrize(
    "bad",
    [{"n_users": 0}, {"n_interactions": 10}, {"n_interactions": 10**6}, {"item_alpha": -1.0}],
)
def test_bad_sizes_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SyntheticSpec(**{**SMALL, **bad})


SIZES = [
    "dataset.reader.n_users=120",
    "dataset.reader.n_items=200",
    "dataset.reader.n_interactions=2400",
    "dataset.reader.text_dim=32",
]


def test_load_data_needs_no_files(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GNN_RAW", "/nonexistent")
    data = load_data(make_cfg(["dataset=synthetic", *SIZES]))
    assert data.protocol["dataset"] == "synthetic" and data.item_vectors.shape == (200, 32)


@pytest.mark.parametrize("model", ["compressor", "lightgcn_id"])
def test_fast_dev_run_on_synthetic(make_cfg, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    monkeypatch.setenv("RECSYS_GNN_RAW", "/nonexistent")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(
        "recsys_gnn.models.encoder.TextEncoder.encode",
        lambda self, texts: pytest.fail("the encoder ran on dataset=synthetic"),
    )
    cfg = make_cfg(["dataset=synthetic", f"model={model}", "compress.dim=8", *SIZES])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 0.0 <= metrics["val/ndcg@10"] <= 1.0 and 0.0 <= metrics["test/recall@20"] <= 1.0
