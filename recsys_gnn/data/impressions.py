"""Training samples drawn from news impression logs (``data.sampling=impressions``).

A news impression lists the candidates a user was shown and which of them were clicked. Each clicked candidate
of a TRAINING impression becomes one sample: the click as positive and ``K`` unclicked candidates of the same
impression as negatives (drawn without replacement when the impression has at least ``K``, with replacement
otherwise), scored with a softmax over the ``1 + K`` (the ``softmax`` loss; Wu et al., "NPA", KDD 2019 and
most MIND models train this way). Validation and test impressions are never sampled. Impressions with no
unclicked candidate give no sample.

Each sample also carries the click history shown with its impression (``hist_items``/``hist_offsets``, a
ragged batch as ``torch.nn.functional.embedding_bag`` reads it), so the model can represent the user by the
articles they read (:func:`recsys_gnn.models.history.history_users`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from recsys_gnn.data.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLINGS: tuple[str, ...] = ("uniform", "impressions")


def history_csr(impressions: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Click histories of ``impressions`` as CSR: ``indptr (N + 1,)`` and ``items (M,)`` int64.

    Impressions without a ``history`` key get an empty history.
    """
    lengths = np.array([len(imp.get("history", ())) for imp in impressions], dtype=np.int64)
    indptr = np.zeros(len(impressions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    parts = [np.asarray(imp.get("history", ()), dtype=np.int64) for imp in impressions]
    items = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return indptr, items


def ragged_rows(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(items (M,), offsets (B,))`` of CSR ``rows``, the ``embedding_bag`` input of a batch."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    offsets = np.zeros(len(rows), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    if lengths.sum():
        flat = np.concatenate([items[s:e] for s, e in zip(starts, ends, strict=True)])
    else:
        flat = np.zeros(0, dtype=np.int64)
    return torch.from_numpy(flat), torch.from_numpy(offsets)


class ImpressionSamples(Dataset):
    """One sample per clicked candidate of a training impression, with ``K`` negatives from that impression.

    A batch (``__getitems__``) holds ``user (B,)``, ``pos (B,)``, ``neg (B, K)`` (per-row negatives),
    ``weight (B,)`` ones, ``impression (B,)`` (index into ``impressions``) and the impressions' click
    histories as ``hist_items (M,)`` + ``hist_offsets (B,)``.

    Args:
        impressions: ``InteractionData.impressions`` (dicts with user, candidates, labels, split, history?).
        num_negatives: K >= 1.
        seed: sampling seed.
        split: the impressions sampled ("train"; never val or test).

    Raises:
        ConfigError: K < 1, or no impression of ``split`` has both a clicked and an unclicked candidate.
    """

    def __init__(
        self, impressions: list[dict[str, Any]], num_negatives: int = 4, seed: int = 0, split: str = "train"
    ) -> None:
        if int(num_negatives) < 1:
            raise ConfigError(f"data.impression_negatives must be >= 1, got {num_negatives}")
        self.num_negatives = int(num_negatives)
        self.rng = np.random.default_rng(seed)
        kept = [
            imp
            for imp in impressions
            if imp["split"] == split and 0 < int(np.sum(imp["labels"])) < len(imp["labels"])
        ]
        if not kept:
            raise ConfigError(
                f"data.sampling=impressions: no {split!r} impression has both a clicked and an unclicked "
                "candidate; use data.sampling=uniform"
            )
        self.impressions = kept
        self.users = np.array([imp["user"] for imp in kept], dtype=np.int64)  # (N,)
        negs = [np.asarray(imp["candidates"])[np.asarray(imp["labels"]) == 0] for imp in kept]
        self.neg_count = np.array([len(n) for n in negs], dtype=np.int64)  # (N,)
        self.neg_indptr = np.zeros(len(kept) + 1, dtype=np.int64)
        np.cumsum(self.neg_count, out=self.neg_indptr[1:])
        self.neg_items = np.concatenate(negs).astype(np.int64)
        rows = [
            (i, c)
            for i, imp in enumerate(kept)
            for c, y in zip(imp["candidates"], imp["labels"], strict=True)
            if y == 1
        ]
        self.row_imp = np.array([r[0] for r in rows], dtype=np.int64)  # (S,)
        self.row_pos = np.array([r[1] for r in rows], dtype=np.int64)  # (S,)
        self.hist_indptr, self.hist_items = history_csr(kept)
        log.info(
            "impression samples: %d clicks of %d %s impressions, %d negatives each (%d impressions have fewer: "
            "drawn with replacement)",
            len(rows),
            len(kept),
            split,
            self.num_negatives,
            int((self.neg_count < self.num_negatives).sum()),
        )

    def __len__(self) -> int:
        return len(self.row_imp)

    def sample_negatives(self, imps: np.ndarray) -> np.ndarray:
        """``(B, K)`` unclicked candidates of each row's impression (without replacement where possible)."""
        count = self.neg_count[imps]  # (B,)
        k = self.num_negatives
        # without replacement: the K smallest of random keys over the impression's negatives
        width = int(count.max())
        keys = self.rng.random((len(imps), width))
        keys[np.arange(width)[None, :] >= count[:, None]] = np.inf
        picked = np.argsort(keys, axis=1)[:, :k]  # (B, min(K, width))
        if picked.shape[1] < k:
            picked = np.pad(picked, ((0, 0), (0, k - picked.shape[1])))
        few = count < k
        if few.any():
            picked[few] = self.rng.integers(0, count[few, None], size=(int(few.sum()), k))
        return self.neg_items[self.neg_indptr[imps, None] + picked]

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        idx = np.asarray(idx)
        imps = self.row_imp[idx]
        hist_items, hist_offsets = ragged_rows(self.hist_indptr, self.hist_items, imps)
        return {
            "user": torch.from_numpy(self.users[imps]),
            "pos": torch.from_numpy(self.row_pos[idx]),
            "neg": torch.from_numpy(self.sample_negatives(imps)),
            "weight": torch.ones(len(idx), dtype=torch.float32),
            "impression": torch.from_numpy(imps),
            "hist_items": hist_items,
            "hist_offsets": hist_offsets,
        }

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        batch = self.__getitems__([i])
        return {k: v if k.startswith("hist_") else v[0] for k, v in batch.items()}
