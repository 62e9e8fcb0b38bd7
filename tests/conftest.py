"""Shared fixtures: a tiny MovieLens-format raw folder and Hydra config composition."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
REAL_RAW = os.environ.get("RECSYS_GNN_RAW")

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Animation", "Thriller"]


def write_tiny_movielens(root: Path, n_users: int = 40, n_items: int = 60, seed: int = 0) -> Path:
    """Write a small, made-up dataset in the exact ml-latest-small CSV format under ``root/ml-latest-small``.

    Users like items of two preferred genres (ratings 4-5) and dislike others (1-3), so models have signal.
    """
    rng = np.random.default_rng(seed)
    folder = root / "ml-latest-small"
    folder.mkdir(parents=True, exist_ok=True)
    item_genre = rng.integers(0, len(GENRES), size=n_items)
    with open(folder / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for i in range(n_items):
            g = GENRES[item_genre[i]]
            f.write(f'{i + 1},"{g} Story {i} ({1980 + i % 40})",{g}|{GENRES[(item_genre[i] + 3) % 8]}\n')
    with open(folder / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u in range(n_users):
            liked = set(rng.choice(len(GENRES), size=2, replace=False).tolist())
            items = rng.choice(n_items, size=int(rng.integers(12, 24)), replace=False)
            for t, i in enumerate(items):
                r = (
                    float(rng.choice([4.0, 4.5, 5.0]))
                    if item_genre[i] in liked
                    else float(rng.choice([1.0, 2.0, 3.0]))
                )
                f.write(f"{u + 1},{i + 1},{r},{1000000000 + 1000 * u + t}\n")
    with open(folder / "tags.csv", "w") as f:
        f.write("userId,movieId,tag,timestamp\n")
        for i in range(0, n_items, 3):
            f.write(f"1,{i + 1},{GENRES[item_genre[i]].lower()} classic,1100000000\n")
    with open(folder / "links.csv", "w") as f:
        f.write("movieId,imdbId,tmdbId\n")
        for i in range(n_items):
            f.write(f"{i + 1},{100000 + i},{i}\n")
    return root


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw-data root holding a tiny ml-latest-small-format dataset."""
    return write_tiny_movielens(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole session, so the encoder runs once per distinct text list."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def make_cfg(tmp_path: Path, shared_cache: Path) -> Callable[..., DictConfig]:
    """Compose ``conf/train.yaml`` with overrides; output and cache go to temporary folders."""

    def _make(overrides: list[str] | None = None, fast: bool = True) -> DictConfig:
        base = [f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={shared_cache}", "logger=csv"]
        if fast:
            base.append("debug=fast")
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=base + list(overrides or []))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
        return cfg

    return _make


@pytest.fixture
def tiny_env(tiny_raw: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RECSYS_GNN_RAW at the tiny dataset and the cache at a temporary folder.

    The tiny files are made up, not the official ml-latest-small, so runs on them are explicitly unverified.
    """
    monkeypatch.setenv("RECSYS_GNN_RAW", str(tiny_raw))
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tiny_raw
