"""The rating job (``task=rating``): seed -> data -> rating model -> fit -> validate/test the best checkpoint."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

import recsys_gnn.pipeline as pipeline  # module import: safe if pipeline imports this module back
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
    encoder_model = pipeline.build_model(cfg, data)
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


def save_rating_run_info(cfg: DictConfig, out: Path, protocol: dict[str, Any]) -> None:
    """Write the resolved config, seed/versions and protocol next to the results."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    info = {
        "seed": cfg.seed,
        "git_commit": pipeline.git_commit(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "run_info.json").write_text(json.dumps(info, indent=2))
    (out / "protocol.json").write_text(json.dumps(protocol, indent=2, default=str))


def run_rating(cfg: DictConfig) -> float:
    """Run one rating-prediction job and return ``val/rmse`` (lower is better).

    Writes ``config.yaml``, ``run_info.json``, ``protocol.json``, ``metrics.json``, ``metrics.md`` and
    ``classification_report.{txt,json}`` (test set) into ``cfg.paths.output_dir``.

    Raises:
        ConfigError: bad ``rating`` settings, or a dataset without explicit ratings (raised by preprocess).
    """
    rc = rating_settings(cfg)
    out = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    pipeline.configure_wandb_mode()
    data = pipeline.load_data(cfg)
    protocol = _protocol(cfg, data)
    save_rating_run_info(cfg, out, protocol)

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
    optimizer = make_optimizer(rc)
    module = RatingModule(model, optimizer=optimizer)

    loggers = pipeline.instantiate_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    callbacks: list[pl.Callback] = []
    if model.trainable:
        callbacks = [
            ModelCheckpoint(
                dirpath=rc.checkpoint_dir, filename="best", monitor=MONITOR, mode="min", save_top_k=1
            ),
            EarlyStopping(monitor=MONITOR, mode="min", patience=int(rc.patience)),
            LogProgress(),
        ]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, max_epochs=int(rc.epochs), logger=loggers or False, callbacks=callbacks
    )

    results: dict[str, dict[str, float]] = {}
    ckpt = None
    if model.trainable:
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        results["fit"] = {"fit/seconds": time.perf_counter() - t0, "fit/epochs": float(trainer.current_epoch)}
        ckpt = None if cfg.trainer.get("fast_dev_run") else "best"
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    results["val"] = val[0] if val else {}
    test = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    results["test"] = test[0] if test else {}

    metrics = {k: float(v) for stage in results.values() for k, v in stage.items()}
    preds = module.predictions["test"]
    save_classification_report(preds["true"], preds["class"], rc.scale, out)
    _log_prediction_spread(preds)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    table = format_rating_table(metrics, protocol)
    (out / "metrics.md").write_text(table)
    if ckpt == "best" and trainer.checkpoint_callback is not None:
        (out / "best_checkpoint.txt").write_text(str(trainer.checkpoint_callback.best_model_path))
    pipeline.finish_wandb()  # W&B prints when it closes: close it first, so that the results come last
    log.info("rating results (%s):\n%s", out, table)
    return metrics[MONITOR]


def _log_prediction_spread(preds: dict[str, np.ndarray]) -> None:
    counts = np.unique(preds["class"], return_counts=True)
    log.info(
        "test predictions: mean %.3f (true %.3f), std %.3f; predicted classes %s",
        float(preds["rating"].mean()),
        float(preds["true"].mean()),
        float(preds["rating"].std()),
        dict(zip(counts[0].tolist(), counts[1].tolist(), strict=True)),
    )
