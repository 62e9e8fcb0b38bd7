"""Choose the compressor's ``cold_scale`` on the validation set: new items and old ones on one scale.

Rows of items without a training interaction come from their text alone and score lower than propagated
warm rows, so in one ranked list with the old items they never reach the top (``test_cold/ndcg@10`` ~ 0).
Multiplying those rows by a scalar ``s`` (:meth:`~recsys_gnn.models.compressor.GNNCompressor.set_cold_scale`)
lifts their scores by the factor ``s``; :func:`calibrate_cold_scale` picks the ``s`` of a grid that maximises
the validation NDCG@k by full ranking over the whole catalogue (training items masked, as in
:class:`~recsys_gnn.models.module.RecModule`'s validation), optionally only among the scales that cost the
trained (warm) items' validation NDCG@k at most a given fraction: the overall NDCG weighs new and old items by
the validation set's mix, which on a cold-item split is far richer in new items than most catalogues. :class:`ColdScaleCalibration` runs it in the
ranking job once the best checkpoint is loaded for the test, so the test and the saved tables use the scale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.ranking import evaluate_full_ranking

log = logging.getLogger(__name__)

DEFAULT_GRID: tuple[float, ...] = tuple(round(1.0 + 0.1 * i, 2) for i in range(21))  # 1.0, 1.1, ..., 3.0


@dataclass
class Calibration:
    """The chosen scale and the validation curve behind it.

    Attributes:
        scale: the grid value with the best ``curve[..]["all"]`` (the smallest one on ties) among the allowed.
        k: the NDCG cut-off.
        max_warm_loss: the largest relative loss of ``curve[..]["warm"]`` against scale 1 allowed, or None.
        curve: ``{scale: {"all": ndcg, "cold": ndcg, "warm": ndcg}}``; ``cold``/``warm``: targets restricted
            to items without / with a training interaction (still ranked against the whole catalogue).
    """

    scale: float
    k: int
    max_warm_loss: float | None = None
    curve: dict[float, dict[str, float]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat ``calib/...`` entries for ``metrics.json``: the scale, and each grid point's val NDCG@k."""
        out = {"calib/cold_scale": self.scale}
        for s, values in self.curve.items():
            for part, v in values.items():
                name = "" if part == "all" else f"_{part}"
                out[f"calib/val{name}_ndcg@{self.k}/scale={s:g}"] = v
        return out


def calibrate_cold_scale(
    model: Any,
    data: InteractionData,
    grid: Sequence[float] = DEFAULT_GRID,
    k: int = 10,
    batch_size: int = 1024,
    max_warm_loss: float | None = None,
) -> Calibration:
    """Set ``model``'s ``cold_scale`` to the grid value with the best validation NDCG@k and return the curve.

    Each scale is scored as evaluation scores it: ``model.fold_in(model.embed(), val_history)`` then
    ``model.score`` for ``(B,)`` users -> ``(B, I)`` scores, ranked over all items with the users' training
    items masked.

    Args:
        model: a :class:`~recsys_gnn.models.compressor.GNNCompressor` (``set_cold_scale``, ``untrained``).
        data: the dataset; its ``val`` pairs are the targets.
        grid: scales to try (> 0).
        k: NDCG cut-off.
        batch_size: users per scoring batch.
        max_warm_loss: if set, only scales whose warm-item val NDCG@k is at least ``(1 - max_warm_loss)`` times
            that of scale 1 (added to the grid) are allowed; None: every grid value.
    """
    grid = sorted({float(s) for s in grid} | ({1.0} if max_warm_loss is not None else set()))
    if not grid or grid[0] <= 0:
        raise ValueError(f"cold_scale grid must be non-empty numbers > 0; got {list(grid)}")
    if max_warm_loss is not None and not 0.0 <= max_warm_loss < 1.0:
        raise ValueError(f"max_warm_loss must be in [0, 1) or None; got {max_warm_loss!r}")
    targets, mask = data.matrix(data.val), data.matrix(data.known_for("val"))
    untrained = model.untrained.cpu().numpy()  # (I,) bool
    history = torch.as_tensor(
        data.val_history if data.val_history is not None else np.zeros((0, 2)), dtype=torch.long
    )
    was_training = model.training
    model.eval()
    curve: dict[float, dict[str, float]] = {}
    try:
        with torch.no_grad():
            for s in grid:
                model.set_cold_scale(s)
                user_emb, item_emb = model.embed()
                cache = model.fold_in((user_emb, item_emb), history.to(user_emb.device), data.n_users)

                def score(users: Tensor, cache: tuple[Tensor, Tensor] = cache) -> Tensor:
                    return model.score(users.to(cache[0].device), cache)  # (B, I)

                curve[s] = {
                    part: evaluate_full_ranking(
                        score, targets, mask, ks=[k], batch_size=batch_size, item_subset=sub
                    )[f"ndcg@{k}"]
                    for part, sub in (("all", None), ("cold", untrained), ("warm", ~untrained))
                }
    finally:
        model.train(was_training)
    allowed = grid
    if max_warm_loss is not None and np.isfinite(curve[1.0]["warm"]):
        floor = (1.0 - max_warm_loss) * curve[1.0]["warm"]
        allowed = [s for s in grid if curve[s]["warm"] >= floor]  # 1.0 always passes
    best = max(allowed, key=lambda s: (_finite(curve[s]["all"]), -s))
    model.set_cold_scale(best)
    log.info(
        "cold_scale calibration (val NDCG@%d; all / untrained items / trained items; max_warm_loss=%s):\n%s\n"
        "chosen cold_scale=%g",
        k,
        max_warm_loss,
        "\n".join(f"  {s:4g}: {v['all']:.4f} / {v['cold']:.4f} / {v['warm']:.4f}" for s, v in curve.items()),
        best,
    )
    return Calibration(best, k, max_warm_loss, curve)


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


class ColdScaleCalibration(pl.Callback):
    """Calibrate ``cold_scale`` when the test starts, i.e. after the best checkpoint was restored for it.

    The scale is a non-persistent buffer, so the restored weights do not reset it; the test metrics and the
    job's saved tables then use it. ``result`` holds the :class:`Calibration` afterwards.
    """

    def __init__(self, data: InteractionData, k: int = 10, grid: Sequence[float] = DEFAULT_GRID) -> None:
        self.data, self.k, self.grid = data, int(k), tuple(grid)
        self.result: Calibration | None = None

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = pl_module.model
        cap = getattr(model, "cold_scale_max_warm_loss", None)
        self.result = calibrate_cold_scale(model, self.data, self.grid, self.k, max_warm_loss=cap)
