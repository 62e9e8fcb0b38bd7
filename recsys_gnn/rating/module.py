"""LightningModule for explicit rating prediction: trains a :class:`RatingPredictor`, logs RMSE/MAE/accuracy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.rating.metrics import rating_metrics
from recsys_gnn.rating.models import RatingPredictor

log = logging.getLogger(__name__)

Batch = dict[str, Tensor]


class RatingModule(pl.LightningModule):
    """Trains on ``(user, item, rating)`` batches with the model's objective and evaluates rating metrics.

    Logs ``train/loss`` and ``{val,test}/{rmse,mae,accuracy,macro_f1}`` (checkpoint and early-stop on
    ``val/rmse``, mode min). The predictions of the last evaluation of each stage are kept in
    :attr:`predictions` (``{"val"|"test": {"rating", "class", "true"}}`` numpy arrays) for reports.

    Args:
        model: the rating predictor.
        optimizer: ``partial`` optimizer factory (params -> Optimizer); needed only to fit.
        scheduler: optional ``partial`` LR scheduler factory.
    """

    def __init__(
        self,
        model: RatingPredictor,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.predictions: dict[str, dict[str, np.ndarray]] = {}
        self._state: Any = None
        self._outputs: list[tuple[Tensor, Tensor, Tensor]] = []

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.model.loss(batch["user"], batch["item"], batch["rating"])
        self.log(
            "train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch["user"])
        )
        return loss

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ConfigError("a trainable rating model needs an optimizer (rating.lr / rating.weight_decay)")
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=opt)}}

    # -- evaluation -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        with torch.no_grad():
            self._state = self.model.precompute()
        self._outputs = []

    def _step(self, batch: Batch) -> None:
        out = self.model(batch["user"], batch["item"], self._state)
        rating, cls = self.model.predict(out)
        self._outputs.append((rating.detach().cpu(), cls.detach().cpu(), batch["rating"].detach().cpu()))

    def _end(self, stage: str) -> None:
        rating, cls, true = (torch.cat(parts).numpy() for parts in zip(*self._outputs, strict=True))
        self.predictions[stage] = {"rating": rating, "class": cls, "true": true}
        values = rating_metrics(rating, true, self.model.scale, pred_classes=cls)
        values.pop("n")
        for name, value in values.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name == "rmse")
        self._state, self._outputs = None, []

    def on_validation_epoch_start(self) -> None:
        self._start()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch)

    def on_validation_epoch_end(self) -> None:
        self._end("val")

    def on_test_epoch_start(self) -> None:
        self._start()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch)

    def on_test_epoch_end(self) -> None:
        self._end("test")
