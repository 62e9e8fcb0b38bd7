"""Training progress as log lines (not a terminal progress bar): one line per epoch, optionally every N steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class LogProgress(pl.Callback):
    """Log ``epoch e/E: <metrics> (s)`` at the end of each training epoch (after its validation), and ``step b/B`` every ``every_n_steps`` steps.

    Args:
        every_n_steps: also log the training loss every this many steps of an epoch (0: epoch lines only).
        metrics: keys of ``trainer.callback_metrics`` shown on the epoch line (missing ones are left out).
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        metrics: Sequence[str] = ("train/loss", "val/ndcg@10", "val/recall@10", "val/rmse"),
    ) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0; got {every_n_steps}")
        self.every_n_steps = int(every_n_steps)
        self.metrics = tuple(metrics)
        self._epoch_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.every_n_steps or (batch_idx + 1) % self.every_n_steps or not trainer.is_global_zero:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        total = trainer.num_training_batches
        log.info(
            "epoch %d step %d/%s: loss %.4f",
            trainer.current_epoch + 1,
            batch_idx + 1,
            total if isinstance(total, int) else "?",
            float(loss) if loss is not None else float("nan"),
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs after the epoch's validation, so both the epoch's loss and its validation metrics are in
        if not trainer.is_global_zero:
            return
        shown = []
        for key in self.metrics:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                shown.append(f"{key} {float(value):.4f}")
        log.info(
            "epoch %d/%d: %s (%.1f s)",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            ", ".join(shown) or "no metrics yet",
            time.perf_counter() - self._epoch_start,
        )
