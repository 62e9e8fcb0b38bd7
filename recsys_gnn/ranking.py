"""The ranking jobs (``task=ranking``): top-K recommendation trained on sampled negatives or on impressions.

:class:`RankingJob` trains on the training interactions with uniform negatives (``data.sampling=uniform``);
:class:`ImpressionJob` on the clicks of training impressions against unclicked candidates of the same
impression (``data.sampling=impressions``, news datasets). Both evaluate by full ranking (plus impression
metrics where the data has impressions), then write the embedding tables, the quantised evaluation and the
compression report. The job around them is :func:`recsys_gnn.job.run`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from recsys_gnn import job
from recsys_gnn.compress.evaluate import evaluate_quantized
from recsys_gnn.compress.run_report import report_scalars, run_compression_report
from recsys_gnn.data.datamodule import RecDataModule
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.distributed import check_accelerator
from recsys_gnn.eval.cold_calibration import ColdScaleCalibration
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.module import RecModule
from recsys_gnn.plots import log_to_wandb, write_run_plots
from recsys_gnn.report import format_metrics_table
from recsys_gnn.tables import save_tables

log = logging.getLogger(__name__)

PROTOCOL_TEXT = (
    "full ranking over all items of the catalogue; each user's training items (and, at test, validation "
    "items) masked; users with no target items skipped; metrics averaged over users"
)


def ranking_protocol(cfg: DictConfig, data: InteractionData) -> dict[str, Any]:
    """``protocol.json`` of a ranking run: the data's protocol, dropped rows, cut-offs and evaluation."""
    return {**data.protocol, "drops": data.drops, "ks": list(cfg.module.ks), "evaluation": PROTOCOL_TEXT}


def save_run_info(cfg: DictConfig, out: Path, data: InteractionData) -> None:
    """Write the resolved config, seed, commit and ranking protocol next to the results."""
    job.write_run_info(cfg, out, ranking_protocol(cfg, data))


@dataclass
class RankingSetup(job.Setup):
    """A ranking setup, plus what the compression report needs and the ``cold_scale`` calibration (if any)."""

    context: ModelContext
    train_params: int
    calibration: ColdScaleCalibration | None = None


class RankingJob(job.Variant):
    """Top-K recommendation on the training interactions, each positive against uniform negatives."""

    def check(self, cfg: DictConfig) -> None:
        """Fail early when the trainer asks for hardware or a launch mode that cannot work here."""
        check_accelerator(cfg)

    def protocol(self, cfg: DictConfig, data: InteractionData) -> dict[str, Any]:
        """:func:`ranking_protocol`."""
        return ranking_protocol(cfg, data)

    def datamodule(self, cfg: DictConfig, data: InteractionData) -> RecDataModule:
        """Training batches and full-ranking evaluation users, as ``cfg.data`` says."""
        return RecDataModule(data, seed=cfg.seed, **cfg.data)

    def setup(self, run: job.JobRun) -> RankingSetup:
        """``cfg.model`` with its context, the data module and a :class:`RecModule` with ``cfg.module``."""
        cfg, data = run.cfg, run.data
        context = job.build_context(cfg, data)
        model = job.build_model(cfg, data, context)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        run.record(trainable_params=n_train)
        datamodule = self.datamodule(cfg, data)
        optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
        scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
        module = RecModule(model, data, optimizer=optimizer, scheduler=scheduler, **cfg.module)
        trainable = bool(getattr(model, "trainable", True))
        # model.cold_scale=auto: the scale is chosen on the validation set once the best checkpoint is loaded
        calibration = ColdScaleCalibration(data) if getattr(model, "calibrate_cold", False) else None
        return RankingSetup(module, datamodule, trainable, context, n_train, calibration)

    def callbacks(self, cfg: DictConfig, setup: job.Setup) -> list[Any]:
        """The ``callbacks`` group (checkpoint on ``cfg.monitor``, early stopping, progress lines), plus the
        ``cold_scale`` calibration at the start of the test."""
        calibration = getattr(setup, "calibration", None)
        return job.instantiate_dict(cfg.get("callbacks")) + ([calibration] if calibration else [])

    def finish(
        self, run: job.JobRun, setup: job.Setup, loggers: list[Any], metrics: dict[str, float]
    ) -> None:
        """Embedding tables; after a real test also the quantised evaluation, compression report and plots."""
        assert isinstance(setup, RankingSetup)
        cfg, data, out = run.cfg, run.data, run.out
        module = setup.module
        assert isinstance(module, RecModule)
        if setup.calibration is not None and setup.calibration.result is not None:
            calib = setup.calibration.result.metrics()
            metrics.update(calib)
            for lg in loggers:  # the curve stays in metrics.json
                lg.log_metrics({"calib/cold_scale": calib["calib/cold_scale"]})
        with torch.no_grad():
            module.model.eval()
            user_emb, item_emb = module.model.embed()
        save_tables(out / "tables", user_emb, item_emb, data)
        schemes = list(cfg.compress.get("evaluate") or [])
        tested = cfg.get("test", True) and not cfg.trainer.get("fast_dev_run")
        if not tested:
            return
        # The test-time tables: cold users represented from their given history, as in RecModule's test.
        u_test, i_test = module.model.fold_in((user_emb, item_emb), module.histories["test"], data.n_users)
        if schemes:
            metrics.update(evaluate_quantized(u_test, i_test, data, schemes=schemes, ks=list(cfg.module.ks)))
        report = None
        if cfg.compress.get("report", True):
            report = run_compression_report(
                out,
                cfg.model._target_.rsplit(".", 1)[-1],
                u_test,
                i_test,
                data,
                metrics,
                train_params=setup.train_params,
                schemes=schemes,
                context=setup.context,
                ks=list(cfg.module.ks),
            )
            for lg in loggers:
                lg.log_metrics(report_scalars(report))
        plots = write_run_plots(out, metrics, report)
        log_to_wandb(loggers, plots, report)

    def table(self, run: job.JobRun, metrics: dict[str, float]) -> str:
        """:func:`recsys_gnn.report.format_metrics_table` at ``cfg.module.ks``."""
        return format_metrics_table(metrics, protocol=run.data.protocol, ks=list(run.cfg.module.ks))


class ImpressionJob(RankingJob):
    """Top-K recommendation trained on impressions (news): each click of a training impression against
    ``data.impression_negatives`` unclicked candidates of that impression.

    The data module draws :class:`~recsys_gnn.data.impressions.ImpressionSamples`; :class:`RecModule` trains
    on them with :func:`~recsys_gnn.models.history.impression_loss`, each user represented by the click
    history of the impression (unless the model opts out). Evaluation, tables and report are the ranking
    job's; the impression metrics (``{stage}_impressions/...``) come from :class:`RecModule` whenever the data
    has impressions.
    """

    def datamodule(self, cfg: DictConfig, data: InteractionData) -> RecDataModule:
        """:class:`RecDataModule` with ``sampling="impressions"`` (a ConfigError when the data has none)."""
        return RecDataModule(data, seed=cfg.seed, **{**cfg.data, "sampling": "impressions"})
