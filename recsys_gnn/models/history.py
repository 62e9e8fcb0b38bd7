"""News users as their click history: the mean of the history articles' rows of the trained item table.

A news reader is known by the articles they clicked before an impression (the ``history`` column of MIND's
and NeMig's behaviors file). Representing the user of each impression by that history - folded through the
model's final item table, as in the user encoders of NRMS/NPA reduced to a mean - scores users with no
training row and new articles alike, and is the same at training and evaluation. A model opts out with
``history_users = False`` (non-personalised scores: popularity, CTR, random), and an impression with an
empty history falls back to the model's own user row. A model with ``item_bias = True`` keeps an item bias in
its tables' last column (:mod:`recsys_gnn.models.item_bias`): a history user's last column is set to 1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.models.base import Batch, pair_scores, ranking_loss, scored_rows
from recsys_gnn.models.item_bias import unit_bias_column


def uses_history(model: Any) -> bool:
    """Whether ``model`` represents news users by their click history (its ``history_users``, default True)."""
    return bool(getattr(model, "history_users", True))


def has_item_bias(model: Any) -> bool:
    """Whether ``model``'s tables end with an item-bias column (its ``item_bias``, default False)."""
    return bool(getattr(model, "item_bias", False))


def history_users(
    item_emb: Tensor,
    hist_items: Tensor,
    hist_offsets: Tensor,
    fallback: Tensor,
    similarity: str = "dot",
    item_bias: bool = False,
) -> Tensor:
    """``(B, D)`` users as the mean of their history items' rows of ``item_emb``.

    Args:
        item_emb: ``(I, D)`` final item table (as scored: L2-normalised rows for cosine models).
        hist_items: ``(M,)`` history item indices of the batch, row after row.
        hist_offsets: ``(B,)`` start of each row's history in ``hist_items``.
        fallback: ``(B, D)`` rows used where the history is empty (the model's user rows).
        similarity: "cosine" L2-normalises the mean (scores stay cosines); "dot" keeps it.
        item_bias: the tables' last column is an item bias: the user's is set to 1 (dot only).
    """
    mean = F.embedding_bag(hist_items, item_emb, hist_offsets, mode="mean")  # (B, D); empty rows are 0
    if item_bias:
        mean = unit_bias_column(mean)
    ends = torch.cat([hist_offsets[1:], hist_offsets.new_tensor([hist_items.numel()])])
    has = (ends - hist_offsets) > 0  # (B,)
    return scored_rows(similarity, torch.where(has[:, None], mean, fallback))


def impression_loss(
    model: Any, batch: Batch, kind: str = "softmax", temperature: float = 1.0
) -> tuple[Tensor, dict[str, Any]]:
    """Loss of an impression batch (:class:`~recsys_gnn.data.impressions.ImpressionSamples`).

    The model's tables come from ``model.embed()`` (so gradients reach the GNN and the projection); each row's
    user is its impression's click history (:func:`history_users`) unless the model opts out; the clicked
    candidate is scored against the ``(B, K)`` unclicked candidates of its impression with ``kind``. A model
    with its own ``impression_loss(batch, kind, temperature)`` method computes it instead (e.g. one that
    encodes only the batch's articles with gradients).
    """
    # the tables below are full-graph: a model's neighbour sampling (model.fanout) would be skipped silently
    if getattr(model, "fanout", None) is not None:
        raise ConfigError(
            "model.fanout is not supported with data.sampling=impressions; set model.fanout=null"
        )
    # a model whose tables come without gradients (the fine-tuned LM) encodes the batch itself
    own = getattr(model, "impression_loss", None)
    if own is not None:
        return own(batch, kind, temperature)
    user_emb, item_emb = model.embed()
    u = user_emb[batch["user"]]  # (B, D)
    if uses_history(model):
        similarity = getattr(model, "similarity", "dot")
        bias = has_item_bias(model)
        u = history_users(item_emb, batch["hist_items"], batch["hist_offsets"], u, similarity, bias)
    pos, neg = pair_scores(u, item_emb, batch)
    main = ranking_loss(kind, pos, neg, temperature, batch.get("neg_valid"))
    return main + model.regularization(batch, user_emb, item_emb), {}
