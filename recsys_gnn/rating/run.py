"""The rating job (``task=rating``): the :class:`RatingJob` variant of :func:`recsys_gnn.job.run`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from recsys_gnn import job
from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.progress import LogProgress
from recsys_gnn.rating.datamodule import RatingDataModule
from recsys_gnn.rating.head import RatingHead
from recsys_gnn.rating.metrics import save_classification_report
from recsys_gnn.rating.models import BiasedMF, GlobalMean, RatingModel, RatingPredictor, UserItemBiases
from recsys_gnn.rating.module import RatingModule

log = logging.getLogger(__name__)

MODELS = ("compressor", "global_mean", "biases", "biased_mf")
MONITOR = "val/rmse"
METRICS = ("rmse", "mae", "accuracy", "macro_f1")
PROTOCOL_TEXT = (
    "explicit rating prediction of held-out (user, item) pairs; RMSE/MAE of the predicted rating (a "
    "classifier's expected rating), clipped to the scale; accuracy and macro-F1 over the integer classes "
    "(classifier: argmax class; regression: prediction rounded half-up); best epoch chosen on val/rmse"
)


def rating_settings(cfg: DictConfig) -> DictConfig:
    """``cfg.rating`` checked: a known model, and the task is ``rating``.

    Raises:
        ConfigError: no ``rating`` group, ``task`` is not "rating", or an unknown ``rating.model``.
    """
    if cfg.get("task") != "rating":
        raise ConfigError(f"run_rating needs task=rating; got task={cfg.get('task')!r}")
    rc = cfg.get("rating")
    if rc is None:
        raise ConfigError(
            "task=rating needs the `rating` config group (conf/rating/default.yaml): add `+rating=default` "
            "or `- rating: default` to the defaults of conf/train.yaml"
        )
    if rc.model not in MODELS:
        raise ConfigError(f"rating.model must be one of {list(MODELS)}; got {rc.model!r}")
    return rc


def build_rating_model(cfg: DictConfig, data: InteractionData) -> RatingPredictor:
    """The predictor named by ``cfg.rating.model`` (the compressor comes from ``build_model(cfg, data)``)."""
    rc = rating_settings(cfg)
    scale = tuple(rc.scale)
    if rc.model == "global_mean":
        return GlobalMean(scale=scale)
    if rc.model == "biases":
        return UserItemBiases(data.n_users, data.n_items, scale=scale, **rc.biases)
    if rc.model == "biased_mf":
        return BiasedMF(data.n_users, data.n_items, scale=scale, **rc.mf)
    encoder_model = job.build_model(cfg, data)
    with torch.no_grad():
        dim = int(encoder_model.embed()[0].shape[1])
    head = RatingHead(
        dim, hidden=rc.head.hidden, objective=rc.objective, scale=scale, dropout=rc.head.dropout
    )
    return RatingModel(encoder_model, head)


def make_optimizer(rc: DictConfig) -> Callable[..., torch.optim.Optimizer]:
    """``params -> Optimizer`` from ``rating.optimizer`` ("adam" or "sgd"), ``lr``, ``weight_decay``, ``momentum``.

    Losses are batch means, so an SGD ``lr`` of ``batch_size * eta`` is per-rating SGD with step ``eta``.
    """
    name = str(rc.get("optimizer", "adam"))
    lr, wd = float(rc.lr), float(rc.weight_decay)
    if name == "adam":
        return partial(torch.optim.Adam, lr=lr, weight_decay=wd)
    if name == "sgd":
        return partial(torch.optim.SGD, lr=lr, weight_decay=wd, momentum=float(rc.get("momentum", 0.0)))
    raise ConfigError(f"rating.optimizer must be 'adam' or 'sgd'; got {name!r}")


def _protocol(cfg: DictConfig, data: InteractionData) -> dict[str, Any]:
    rc = cfg.rating
    reader = cfg.dataset.get("reader") or {}
    return {
        **data.protocol,
        "fold": reader.get("fold"),
        "model": rc.model,
        "objective": rc.objective if rc.model == "compressor" else "regression",
        "scale": list(rc.scale),
        "drops": data.drops,
        "evaluation": PROTOCOL_TEXT,
    }


def format_rating_table(metrics: dict[str, float], protocol: dict[str, Any]) -> str:
    """Markdown: one row per metric with val and test columns, then fit time and the protocol."""
    lines = ["| metric | val | test |", "|---|---|---|"]
    for m in METRICS:
        cells = [metrics.get(f"{s}/{m}") for s in ("val", "test")]
        lines.append(f"| {m} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |")
    if "fit/seconds" in metrics:
        lines += ["", f"Fit: {metrics['fit/seconds']:.1f} s, {int(metrics.get('fit/epochs', 0))} epoch(s)."]
    counts = protocol.get("counts", {})
    lines += [
        "",
        "Protocol:",
        f"- dataset: {protocol.get('dataset')}",
        f"- fold: {protocol.get('fold')}",
        f"- split: {protocol.get('split')}",
        "- ratings train/val/test: "
        + "/".join(str(counts.get(s, {}).get("interactions")) for s in ("train", "val", "test")),
        f"- model: {protocol.get('model')}",
        f"- objective: {protocol.get('objective')}",
        f"- scale: {protocol.get('scale')}",
        f"- evaluation: {protocol.get('evaluation')}",
    ]
    return "\n".join(lines) + "\n"


class RatingJob(job.Variant):
    """Explicit rating prediction: a predictor named by ``rating.model``, trained on (user, item, rating)
    triples and selected on ``val/rmse``."""

    label = "rating results"

    def check(self, cfg: DictConfig) -> None:
        """:func:`rating_settings`."""
        rating_settings(cfg)

    def protocol(self, cfg: DictConfig, data: InteractionData) -> dict[str, Any]:
        """The data's protocol plus fold, model, objective, scale and evaluation."""
        return _protocol(cfg, data)

    def setup(self, run: job.JobRun) -> job.Setup:
        """The predictor (fitted in closed form where it can), its data module and a :class:`RatingModule`."""
        cfg, data = run.cfg, run.data
        rc = cfg.rating
        model = build_rating_model(cfg, data)
        datamodule = RatingDataModule(
            data,
            batch_size=rc.batch_size,
            eval_batch_size=rc.eval_batch_size,
            num_workers=int(cfg.get("data", {}).get("num_workers", 0)),
            seed=cfg.seed,
        )
        train_set = datamodule.sets["train"]
        model.fit(train_set.users, train_set.items, train_set.ratings)
        module = RatingModule(model, optimizer=make_optimizer(rc))
        return job.Setup(module, datamodule, trainable=model.trainable)

    def callbacks(self, cfg: DictConfig, setup: job.Setup) -> list[pl.Callback]:
        """Best checkpoint and early stopping on ``val/rmse`` (``rating.patience``), progress lines."""
        rc = cfg.rating
        return [
            ModelCheckpoint(
                dirpath=rc.checkpoint_dir, filename="best", monitor=MONITOR, mode="min", save_top_k=1
            ),
            EarlyStopping(monitor=MONITOR, mode="min", patience=int(rc.patience)),
            LogProgress(),
        ]

    def trainer_kwargs(self, cfg: DictConfig) -> dict[str, Any]:
        """``rating.epochs`` epochs at most."""
        return {"max_epochs": int(cfg.rating.epochs)}

    def tests(self, cfg: DictConfig) -> bool:
        """Always: the classification report is on the test set."""
        return True

    def monitor(self, cfg: DictConfig) -> str:
        """``val/rmse``."""
        return MONITOR

    def finish(
        self, run: job.JobRun, setup: job.Setup, loggers: list[Any], metrics: dict[str, float]
    ) -> None:
        """``classification_report.{txt,json}`` of the test predictions, and their spread in the log."""
        assert isinstance(setup.module, RatingModule)
        preds = setup.module.predictions["test"]
        save_classification_report(preds["true"], preds["class"], run.cfg.rating.scale, run.out)
        _log_prediction_spread(preds)

    def table(self, run: job.JobRun, metrics: dict[str, float]) -> str:
        """:func:`format_rating_table`."""
        return format_rating_table(metrics, run.protocol)


def run_rating(cfg: DictConfig) -> float | None:
    """Run one rating-prediction job (:class:`RatingJob` in :func:`recsys_gnn.job.run`); return ``val/rmse``
    (lower is better).

    Writes ``config.yaml``, ``run_info.json``, ``protocol.json``, ``metrics.json``, ``metrics.md`` and
    ``classification_report.{txt,json}`` (test set) into ``cfg.paths.output_dir``.

    Raises:
        ConfigError: bad ``rating`` settings, or a dataset without explicit ratings (raised by preprocess).
    """
    return job.run(cfg, RatingJob())


def _log_prediction_spread(preds: dict[str, np.ndarray]) -> None:
    counts = np.unique(preds["class"], return_counts=True)
    log.info(
        "test predictions: mean %.3f (true %.3f), std %.3f; predicted classes %s",
        float(preds["rating"].mean()),
        float(preds["true"].mean()),
        float(preds["rating"].std()),
        dict(zip(counts[0].tolist(), counts[1].tolist(), strict=True)),
    )
