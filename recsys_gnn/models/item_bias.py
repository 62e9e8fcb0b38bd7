"""A learned per-item score offset, folded into the tables as one extra column.

``score(u, i) = <u, i> + b_i`` is written as one dot product of widened rows: every user row ends with a
constant ``1`` and every item row with ``b_i``, so training, evaluation, the saved tables, export and serving
all rank with the bias without knowing it is there (valid for dot-product scores only: a cosine would
normalise the ``1`` and ``b_i`` together with the content part, so ``similarity=cosine`` refuses it).

A user row built from item rows (a news user's click-history mean, a cold user's fold-in, serving's
``recommend_for_items``) gets its last column reset to ``1`` by :func:`unit_bias_column`: the mean of the
history's ``b`` is not a user property.

Items with no training row (never clicked nor shown in a training impression, or cold-dropped in this step)
get the mean bias of the trained items, detached: a new article is scored as an average one plus its content,
rather than by an offset that nothing trained (0 would be arbitrary, since a softmax over candidates only
fixes the biases up to a shared constant).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from recsys_gnn.data.errors import ConfigError

BIAS_INITS = ("zero", "ctr", "pop")


def bias_init(kind: str, data: Any, seen: np.ndarray) -> Tensor:
    """``(I,)`` float32 initial biases, centred on the mean over the ``seen`` items.

    Args:
        kind: ``zero``; ``ctr``: log smoothed click-through rate of the training impressions (the logit a
            softmax over an impression's candidates fits for a content-blind model, at temperature 1);
            ``pop``: log(1 + training interactions) (the logit of a softmax over the whole catalogue).
        data: the dataset (``train``, ``impressions``, ``n_items``).
        seen: ``(I,)`` bool of the items with a training row.
    """
    if kind not in BIAS_INITS:
        raise ConfigError(f"model.item_bias_init must be one of {BIAS_INITS}, got {kind!r}")
    n = int(data.n_items)
    if kind == "zero":
        return torch.zeros(n)
    if kind == "ctr":
        if not data.impressions:
            raise ConfigError(
                "model.item_bias_init=ctr needs impression logs (a news dataset: nemig, mind-*); "
                "use model.item_bias_init=pop or zero"
            )
        from recsys_gnn.models.baselines.ctr import smoothed_ctr

        b = torch.log(smoothed_ctr(data.impressions, n)[0])
    else:
        counts = np.bincount(np.asarray(data.train, dtype=np.int64)[:, 1], minlength=n)
        b = torch.log1p(torch.as_tensor(counts, dtype=torch.float32))
    seen_t = torch.as_tensor(seen, dtype=torch.bool)
    centre = b[seen_t].mean() if seen_t.any() else b.new_zeros(())
    return (b - centre).float()


class ItemBias(nn.Module):
    """``b (I,)``: one learned scalar per item; unseen (or cold-dropped) items get the trained items' mean.

    Args:
        seen: ``(I,)`` bool of the items with a training row.
        init: ``(I,)`` initial values (:func:`bias_init`).
    """

    def __init__(self, seen: Tensor, init: Tensor) -> None:
        super().__init__()
        if seen.shape != init.shape or seen.dim() != 1:
            raise ValueError(f"seen {tuple(seen.shape)} and init {tuple(init.shape)} must both be (I,)")
        self.register_buffer("seen", seen.bool(), persistent=False)
        self.weight = nn.Parameter(init.float().clone())

    def forward(self, dropped: Tensor | None = None) -> Tensor:
        """``(I,)`` biases as scored; ``dropped``: ``(I,)`` bool of the items trained as new in this step."""
        known = self.seen if dropped is None else self.seen & ~dropped
        fill = self.weight[known].mean().detach() if known.any() else self.weight.new_zeros(())
        return torch.where(known, self.weight, fill)

    def extra_repr(self) -> str:
        return f"items={self.weight.numel()}, seen={int(self.seen.sum())}"


def with_bias_column(users: Tensor, items: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """``(U, D + 1)`` users ``[u, 1]`` and ``(I, D + 1)`` items ``[i, b_i]``: ``<[u, 1], [i, b_i]> = <u, i> + b_i``."""
    return (
        torch.cat([users, users.new_ones(users.shape[0], 1)], 1),
        torch.cat([items, bias.to(items.dtype)[:, None]], 1),
    )


def unit_bias_column(users: Tensor) -> Tensor:
    """``(B, D)`` user rows with the last (bias) column set to 1 (rows averaged from item rows hold the mean b)."""
    return torch.cat([users[:, :-1], users.new_ones(users.shape[0], 1)], 1)


def strip_bias_column(rows: Tensor) -> Tensor:
    """``(N, D)`` rows without their last (bias) column: ``(N, D - 1)``."""
    return rows[:, :-1]
