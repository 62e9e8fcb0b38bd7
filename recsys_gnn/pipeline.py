"""Which job to run: the config picks a variant, :func:`recsys_gnn.job.run` runs it.

``task=rating`` -> :class:`recsys_gnn.rating.run.RatingJob`; ``data.sampling=impressions`` ->
:class:`recsys_gnn.ranking.ImpressionJob`; anything else -> :class:`recsys_gnn.ranking.RankingJob`. The
names that scripts and tests import from here (``load_data``, ``build_model``, ``save_run_info``, ...) are
re-exported from :mod:`recsys_gnn.job` and :mod:`recsys_gnn.ranking`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from recsys_gnn import job
from recsys_gnn.job import (
    build_context,
    build_model,
    configure_wandb_mode,
    finish_wandb,
    git_commit,
    instantiate_loggers,
    load_data,
    wandb_identity,
)
from recsys_gnn.ranking import PROTOCOL_TEXT, ImpressionJob, RankingJob, save_run_info

__all__ = [
    "PROTOCOL_TEXT",
    "build_context",
    "build_model",
    "configure_wandb_mode",
    "finish_wandb",
    "git_commit",
    "instantiate_loggers",
    "load_data",
    "run_job",
    "save_run_info",
    "train",
    "variant_for",
    "wandb_identity",
]


def variant_for(cfg: DictConfig) -> job.Variant:
    """The way to train that ``cfg`` asks for (see the module docstring)."""
    if cfg.get("task") == "rating":
        from recsys_gnn.rating.run import RatingJob  # only rating jobs pay for its imports (scikit-learn)

        return RatingJob()
    data = cfg.get("data") or {}
    if data.get("sampling") == "impressions":
        return ImpressionJob()
    return RankingJob()


def train(cfg: DictConfig) -> float | None:
    """Run one job and return the value of its monitored metric (``cfg.monitor``; ``val/rmse`` for
    ``task=rating``), for sweeps.

    The config is checked first (:func:`recsys_gnn.config_check.check_config`), before any data is read.
    """
    return job.run(cfg, variant_for(cfg))


def run_job(cfg: DictConfig) -> float | None:
    """Run :func:`train` and always close the W&B run; in a multirun a failed job leaves a ``FAILED`` file and
    the sweep goes on (:func:`recsys_gnn.job.guarded`)."""
    return job.guarded(cfg, train)
