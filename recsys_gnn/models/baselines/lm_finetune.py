"""Two-tower model whose item tower is the pretrained LM, fine-tuned end to end on the interactions."""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsys_gnn.models.base import Batch, Recommender, ranking_loss
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.encoder import resolve_model_path
from recsys_gnn.models.history import history_users

log = logging.getLogger(__name__)

#: attribute paths of the transformer block list in common Hugging Face encoders (BERT/RoBERTa/MPNet, DistilBERT)
LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers")


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The ``nn.ModuleList`` of transformer blocks of a Hugging Face encoder.

    Raises:
        ValueError: if none of :data:`LAYER_PATHS` names a ModuleList on ``model``.
    """
    for path in LAYER_PATHS:
        obj: Any = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"cannot find the transformer layers of {type(model).__name__}; looked for {LAYER_PATHS}"
    )


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` (B, T, H) over the tokens where ``mask`` (B, T) is 1 -> ``(B, H)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class LMFinetune(Recommender):
    """The LM path trained end to end: item tower = transformer + mean pooling, user tower = id embedding.

    Paper: the two-tower retrieval model with in-batch negatives (Yi et al., "Sampling-Bias-Corrected Neural
    Modeling for Large Corpus Item Recommendations", RecSys 2019), with a pretrained text encoder as item
    tower (as in Hou et al., "Towards Universal Sequence Representation Learning for Recommender Systems",
    KDD 2022, but fine-tuned rather than frozen).

    Item ``i`` is the L2-normalised mean-pooled output of the encoder on its text (truncated to
    ``max_length`` tokens). Only the last ``unfreeze_layers`` transformer blocks are trained; the embeddings,
    the lower blocks and BERT's ``[CLS]`` pooler (unused by mean pooling) stay frozen and run in eval mode.
    User ``u`` is a learned id embedding (H), normalised, initialised to the mean of the user's training
    items' initial tower outputs, so training starts from the LM content ranking. An id user tower is used
    (rather than the mean of the user's items through the tower) because the latter would push every item of
    every batch user through the encoder at each step; new users are still served by :meth:`fold_in`.

    Loss: softmax over in-batch negatives, ``-log softmax_j(<u_b, v_j> / temperature)`` over the batch's
    distinct positive items ``j``, with the other training positives of ``u_b`` masked out.

    Differences from the paper: no sampling-bias (log-Q) correction; the batch's sampled negatives and the
    pipeline's ``bpr``/``bce`` choice are ignored (``kind`` is accepted for the interface only). With
    ``cache_frozen=True`` the output of the frozen blocks is computed once for all items and stored
    ``(I, T, H)`` float32 (e.g. ~480 MB for 9.7k items at 32 tokens, H=384), so a step only runs the trainable
    blocks; the result equals running the whole encoder (checked at start-up).

    Args:
        context: run-time data (``item_texts``, ``train``) and encoder (its ``model_name`` is the default).
        model_name: Hugging Face name/path or ``packaged:all-MiniLM-L6-v2``; None uses the run's encoder.
        unfreeze_layers: number of last transformer blocks trained, 1..num_hidden_layers.
        max_length: tokens per item text.
        temperature: softmax temperature of the in-batch loss, > 0.
        cache_frozen: store the frozen blocks' output instead of recomputing it every step.
        encode_batch_size: items per forward pass when encoding the whole catalogue.
    """

    needs_text = True

    def __init__(
        self,
        context: ModelContext,
        model_name: str | None = None,
        unfreeze_layers: int = 1,
        max_length: int = 32,
        temperature: float = 0.05,
        cache_frozen: bool = True,
        encode_batch_size: int = 256,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        max_length = _check_int("max_length", max_length, 2)
        self.encode_batch_size = _check_int("encode_batch_size", encode_batch_size, 1)
        if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool) or not temperature > 0:
            raise ValueError(f"temperature must be a float > 0, got {temperature!r}")
        if model_name is None:
            if context.encoder is None:
                raise ValueError("LMFinetune needs model_name or a configured encoder (e.g. encoder=minilm)")
            model_name = context.encoder.model_name
        data = context.data
        self.n_users, self.n_items = data.n_users, data.n_items
        self.model_name, self.max_length, self.temperature = model_name, max_length, float(temperature)

        self.unfreeze_layers = _check_int("unfreeze_layers", unfreeze_layers, 1)
        path = resolve_model_path(model_name)
        self.lm = AutoModel.from_pretrained(path)
        layers = transformer_layers(self.lm)
        if self.unfreeze_layers > len(layers):
            raise ValueError(
                f"unfreeze_layers must be in 1..{len(layers)} for {model_name}, got {unfreeze_layers}"
            )
        self.n_frozen = len(layers) - self.unfreeze_layers
        self.lm.requires_grad_(False)
        for layer in layers[self.n_frozen :]:
            layer.requires_grad_(True)
        self.hidden_size = int(self.lm.config.hidden_size)

        tokenizer = AutoTokenizer.from_pretrained(path)
        tok = tokenizer(
            list(data.item_texts),
            truncation=True,
            max_length=max_length,
            padding="longest",
            return_tensors="pt",
        )
        self.register_buffer("input_ids", tok["input_ids"], persistent=False)  # (I, T)
        self.register_buffer("attention_mask", tok["attention_mask"], persistent=False)  # (I, T)
        self.register_buffer("frozen_hidden", None, persistent=False)  # (I, T, H) when cache_frozen
        keys = np.unique(data.train[:, 0].astype(np.int64) * self.n_items + data.train[:, 1])
        self.register_buffer("train_keys", torch.from_numpy(keys), persistent=False)  # sorted (M',)
        self.user_emb = nn.Embedding(self.n_users, self.hidden_size)
        self.eval()
        if cache_frozen:
            self._build_frozen_cache()
        self._init_users(context)
        self.train()  # trainable blocks in train mode, frozen parts stay in eval
        log.info(
            "LMFinetune %s: %d items x %d tokens, %d/%d layers trained, %d trainable parameters",
            model_name,
            self.n_items,
            self.input_ids.shape[1],
            self.unfreeze_layers,
            len(layers),
            sum(p.numel() for p in self.parameters() if p.requires_grad),
        )

    # -- modes and devices --------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> LMFinetune:
        """Set ``mode`` on the trainable blocks and user tower; the frozen encoder parts always stay in eval."""
        super().train(mode)
        self.lm.eval()
        for layer in transformer_layers(self.lm)[self.n_frozen :]:
            layer.train(mode)
        return self

    # -- item tower ---------------------------------------------------------------------------------------------
    def _batches(self, items: Tensor) -> list[Tensor]:
        """``items`` split into batches of ``encode_batch_size``, sorted by token length (less padding)."""
        lengths = self.attention_mask[items].sum(1)
        order = items[torch.argsort(lengths, stable=True)]
        return list(order.split(self.encode_batch_size))

    @torch.no_grad()
    def _build_frozen_cache(self) -> None:
        """Store the output of the frozen part (embeddings + first ``n_frozen`` blocks) for every item."""
        n, t = self.input_ids.shape
        cache = torch.zeros(n, t, self.hidden_size, dtype=torch.float32, device=self.input_ids.device)
        for idx in self._batches(torch.arange(n, device=self.input_ids.device)):
            mask = self.attention_mask[idx]
            width = int(mask.sum(1).max())
            out = self.lm(
                input_ids=self.input_ids[idx, :width],
                attention_mask=mask[:, :width],
                output_hidden_states=True,
            )
            cache[idx, :width] = out.hidden_states[self.n_frozen].float()
        self.frozen_hidden = cache
        log.info(
            "LMFinetune: cached frozen-layer outputs %s (%.0f MB)",
            tuple(cache.shape),
            cache.numel() * 4 / 2**20,
        )
        probe = torch.arange(min(n, 8), device=cache.device)
        mask = self.attention_mask[probe]
        width = int(mask.sum(1).max())
        full = self.lm(
            input_ids=self.input_ids[probe, :width], attention_mask=mask[:, :width]
        ).last_hidden_state
        full = F.normalize(mean_pool(full, mask[:, :width]), dim=-1)
        if not torch.allclose(self.encode(probe), full, atol=1e-4):
            raise ValueError(
                f"cache_frozen=true does not reproduce the full encoder output of {self.model_name} (its output "
                "is not the last block's output); use cache_frozen=false"
            )

    def encode(self, items: Tensor) -> Tensor:
        """Item tower: ``items`` (P,) -> L2-normalised ``(P, H)`` (gradients reach the trainable blocks)."""
        mask = self.attention_mask[items]
        width = int(mask.sum(1).max())
        mask = mask[:, :width]
        if self.frozen_hidden is None:
            hidden = self.lm(input_ids=self.input_ids[items, :width], attention_mask=mask).last_hidden_state
        else:
            hidden = self.frozen_hidden[items, :width]
            ext = self.lm.get_extended_attention_mask(mask, mask.shape)  # (P, 1, 1, T) additive
            for layer in transformer_layers(self.lm)[self.n_frozen :]:
                out = layer(hidden, attention_mask=ext)
                hidden = out[0] if isinstance(out, tuple) else out
        return F.normalize(mean_pool(hidden, mask), dim=-1)

    @torch.no_grad()
    def encode_all(self) -> Tensor:
        """``(I, H)`` normalised tower outputs of every item, in eval mode and in batches (no gradients)."""
        was_training = self.training
        self.eval()
        try:
            out = torch.zeros(self.n_items, self.hidden_size, device=self.input_ids.device)
            for idx in self._batches(torch.arange(self.n_items, device=self.input_ids.device)):
                out[idx] = self.encode(idx).float()
        finally:
            self.train(was_training)
        return out

    @torch.no_grad()
    def _init_users(self, context: ModelContext) -> None:
        """User rows = normalised mean of their training items' tower outputs (random if they have none)."""
        items = self.encode_all()
        users = torch.sparse.mm(context.train_matrix().to(items.device), items)  # (U, H)
        empty = users.norm(dim=1) == 0
        users[empty] = torch.randn(int(empty.sum()), self.hidden_size, device=items.device)
        self.user_emb.weight.copy_(F.normalize(users, dim=-1))

    # -- Recommender contract -----------------------------------------------------------------------------------
    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, H)`` normalised user embeddings and ``(I, H)`` item tower outputs (no gradients)."""
        items = self.encode_all()
        with torch.no_grad():
            users = F.normalize(self.user_emb.weight, dim=-1)
        return users, items

    def fold_in(self, cache: tuple[Tensor, Tensor], history: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        """Users in ``history`` (M, 2) = normalised mean of those items' embeddings."""
        if history.numel() == 0:
            return cache
        user_emb, item_emb = super().fold_in(cache, history, n_users)
        return F.normalize(user_emb, dim=-1), item_emb

    def loss(
        self, batch: Batch, kind: str = "bpr", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Any]]:
        """In-batch softmax over the batch's distinct positives; ``kind`` and ``temperature`` are ignored (the
        model's own temperature is used; see class docstring)."""
        users = batch["user"]  # (B,)
        items, target = torch.unique(batch["pos"], return_inverse=True)  # (P,), (B,)
        item_vec = self.encode(items)  # (P, H)
        user_vec = F.normalize(self.user_emb(users), dim=-1)  # (B, H)
        logits = user_vec @ item_vec.T / self.temperature  # (B, P)
        known = self._is_known(users, items)  # (B, P) other training positives of each row's user
        known[torch.arange(len(users), device=known.device), target] = False
        logits = logits.masked_fill(known, float("-inf"))
        loss = F.cross_entropy(logits, target)
        acc = (logits.argmax(1) == target).float().mean()
        return loss, {"in_batch_acc": acc.detach()}

    def impression_loss(
        self, batch: Batch, kind: str = "softmax", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Any]]:
        """News training (``data.sampling=impressions``): the clicked candidate against the ``(B, K)`` unclicked
        ones of its impression, the user being the mean of the impression's click-history articles, all encoded
        here with gradients (``embed()`` has none); ``kind`` as given, at the model's own ``temperature`` (the
        rows are cosines, as in :meth:`loss`), so ``temperature`` is ignored."""
        cand = torch.cat([batch["pos"][:, None], batch["neg"]], 1)  # (B, 1 + K)
        items, inv = torch.unique(torch.cat([cand.reshape(-1), batch["hist_items"]]), return_inverse=True)
        rows = self.encode(items)  # (P, H), normalised
        b, k1 = cand.shape
        cand_rows = rows[inv[: b * k1]].view(b, k1, -1)  # (B, 1 + K, H)
        fallback = F.normalize(self.user_emb(batch["user"]), dim=-1)  # (B, H) where the history is empty
        users = history_users(rows, inv[b * k1 :], batch["hist_offsets"], fallback, "cosine")  # (B, H)
        scores = torch.einsum("bh,bkh->bk", users, cand_rows)  # (B, 1 + K)
        loss = ranking_loss(kind, scores[:, 0], scores[:, 1:], self.temperature, batch.get("neg_valid"))
        return loss, {}

    def _is_known(self, users: Tensor, items: Tensor) -> Tensor:
        """``(B, P)`` bool: whether user ``users[b]`` has item ``items[p]`` in training."""
        keys = users[:, None] * self.n_items + items[None, :]
        if len(self.train_keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self.train_keys, keys).clamp(max=len(self.train_keys) - 1)
        return self.train_keys[pos] == keys

    def extra_repr(self) -> str:
        return (
            f"users={self.n_users}, items={self.n_items}, model={self.model_name}, "
            f"unfreeze_layers={self.unfreeze_layers}, max_length={self.max_length}, temperature={self.temperature}"
        )
