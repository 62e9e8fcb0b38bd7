"""LightningModule wrapping any :class:`~recsys_gnn.models.base.Recommender`: training and full-ranking eval."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.news import evaluate_impressions, seen_in_training
from recsys_gnn.eval.ranking import FullRankingMetric, SparseRows
from recsys_gnn.models.base import LOSSES, Recommender
from recsys_gnn.models.history import has_item_bias, impression_loss, uses_history

log = logging.getLogger(__name__)


class RecModule(pl.LightningModule):
    """Trains a recommender on BPR/BCE batches and evaluates it by full ranking over all items.

    Metric keys are ``{stage}/{metric}@{k}`` (``val/ndcg@10``). With ``split=cold_items`` the test also reports
    ``test_cold/...`` (targets restricted to cold items, ranked against the whole catalogue), ``test_warm/...``,
    and ``test_cold_only/...`` / ``test_warm_only/...`` (ranked within that subset of items only, as for a
    catalogue of new items); with ``split=cold_users``, ``test_cold_users/...`` and ``test_warm_users/...``.
    Otherwise ranking covers the whole catalogue, with the user's known items (train, + val at test, + the cold
    user's given history) masked.

    Args:
        model: the recommender.
        data: the dataset (for fold-in histories, cold masks and impressions).
        optimizer: ``partial`` optimizer factory (params -> Optimizer).
        scheduler: optional ``partial`` LR scheduler factory.
        loss: "bpr", "bce" or "softmax" (sampled softmax over the positive and the batch's negatives).
        temperature: softmax temperature (``loss=softmax``), > 0.
        ks: cut-offs.
    """

    def __init__(
        self,
        model: Recommender,
        data: InteractionData,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        loss: str = "bpr",
        ks: Sequence[int] = (5, 10, 20),
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"module.loss must be one of {LOSSES}, got {loss!r}")
        if not temperature > 0:
            raise ValueError(f"module.temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_kind = loss
        self.ks = tuple(int(k) for k in ks)
        self.n_users, self.n_items = data.n_users, data.n_items
        self.histories = {
            "val": _pairs(data.val_history),
            "test": _pairs(data.test_history),
        }
        self.item_subsets: dict[str, Tensor] = {}
        if data.cold_items is not None:
            cold = torch.as_tensor(data.cold_items, dtype=torch.bool)
            self.item_subsets = {"cold": cold, "warm": ~cold}
        self.user_subsets: dict[str, Tensor] = {}
        if data.cold_users is not None:
            cold = torch.as_tensor(data.cold_users, dtype=torch.bool)
            self.user_subsets = {"cold_users": cold, "warm_users": ~cold}
        self.impressions = data.impressions
        # items never seen in training (no training click, never a training candidate): test_impressions_new
        self.new_items = seen_in_training(data) == 0 if data.impressions else None
        self.metrics = torch.nn.ModuleDict()
        for stage in ("val", "test"):
            self.metrics[stage] = FullRankingMetric(ks=self.ks, num_items=self.n_items)
            for name in (*self.item_subsets, *self.user_subsets):
                self.metrics[f"{stage}_{name}"] = FullRankingMetric(ks=self.ks, num_items=self.n_items)
            for name in self.item_subsets:
                self.metrics[f"{stage}_{name}_only"] = FullRankingMetric(ks=self.ks, num_items=self.n_items)
        self._cache: tuple[Tensor, Tensor] | None = None
        self.impression_results: dict[str, float] = {}

    # -- training ---------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if "hist_offsets" in batch:
            # impression samples (data.sampling=impressions): users are their click history
            loss, extra = impression_loss(self.model, batch, self.loss_kind, self.temperature)
        else:
            loss, extra = self.model.loss(batch, kind=self.loss_kind, temperature=self.temperature)
        self.log(
            "train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch["user"])
        )
        for k, v in extra.items():
            self.log(f"train/{k}", v, on_step=False, on_epoch=True, batch_size=len(batch["user"]))
        return loss

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("a trainable model needs an optimizer (config key `optimizer`)")
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=opt)}}

    # -- evaluation -------------------------------------------------------------------------------------------
    def _start_eval(self, stage: str) -> None:
        with torch.no_grad():
            cache = self.model.embed()
            hist = self.histories[stage].to(cache[0].device)
            self._cache = self.model.fold_in(cache, hist, self.n_users)

    def _eval_step(self, stage: str, batch: dict[str, Any]) -> None:
        """Score a batch of users and add it to the stage's metrics.

        ``batch["targets"]`` / ``batch["mask"]`` are CSR :class:`~recsys_gnn.eval.ranking.SparseRows`
        (from :class:`~recsys_gnn.data.datamodule.RankingUsers`) or dense ``(B, I)`` bool tensors.
        """
        assert self._cache is not None
        users, targets, mask = batch["user"], batch["targets"], batch["mask"]
        if isinstance(targets, Tensor):
            targets = SparseRows.from_dense(targets)
        if isinstance(mask, Tensor):
            mask = SparseRows.from_dense(mask)
        scores = self.model.score(users, self._cache)  # (B, I)
        self.metrics[stage].update(scores, targets, mask)
        for name, subset in self.item_subsets.items():
            subset = subset.to(scores.device)
            sub_targets = targets.keep_items(subset)
            self.metrics[f"{stage}_{name}"].update(scores, sub_targets, mask)
            # Ranking within the subset only (e.g. a catalogue of new items): the other items are masked.
            self.metrics[f"{stage}_{name}_only"].update(scores, sub_targets, mask, item_mask=~subset)
        for name, subset in self.user_subsets.items():
            rows = subset.to(users.device)[users]
            if rows.any():
                self.metrics[f"{stage}_{name}"].update(scores[rows], targets.select(rows), mask.select(rows))

    def _end_eval(self, stage: str) -> None:
        for key, metric in self.metrics.items():
            if key != stage and not key.startswith(f"{stage}_"):
                continue
            values = metric.compute()
            for name, value in values.items():
                self.log(f"{key}/{name}", value.float(), sync_dist=False, prog_bar=(name == "ndcg@10"))
            metric.reset()
        self._cache = None

    def _impression_metrics(self, stage: str) -> None:
        """Impression metrics of ``stage`` ("val"/"test") from the current tables, logged at the epoch's end
        as ``{stage}_impressions/...`` (and ``{stage}_impressions_new/...`` for never-seen candidates)."""
        self.impression_results = {}
        imps = [imp for imp in self.impressions or [] if imp["split"] == stage]
        if not imps:
            return
        assert self._cache is not None
        user_emb, item_emb = self._cache
        new = self.new_items if stage == "test" else None
        if new is not None and not new.any():
            new = None
        res = evaluate_impressions(
            user_emb,
            item_emb,
            imps,
            use_history=uses_history(self.model),
            similarity=getattr(self.model, "similarity", "dot"),
            new_items=new,
            ci=stage == "test",
            item_bias=has_item_bias(self.model),
        )
        for group, values in res.items():
            prefix = f"{stage}_impressions" + ("" if group == "all" else f"_{group}")
            self.impression_results.update({f"{prefix}/{k}": float(v) for k, v in values.items()})
        log.info("impression metrics over %d %s impressions: %s", len(imps), stage, res["all"])

    def _log_impressions(self) -> None:
        for name, value in self.impression_results.items():
            self.log(name, value, prog_bar=name.endswith("impressions/auc"))
        self.impression_results = {}

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")
        self._impression_metrics("val")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")
        self._log_impressions()

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")
        self._impression_metrics("test")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
        self._log_impressions()


def _pairs(pairs: np.ndarray | None) -> Tensor:
    if pairs is None:
        return torch.zeros((0, 2), dtype=torch.long)
    return torch.as_tensor(pairs, dtype=torch.long)
