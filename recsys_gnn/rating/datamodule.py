"""Lightning data module over explicit ``(user, item, rating)`` triples for train/val/test."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from recsys_gnn.data.errors import ConfigError, EmptySplitError
from recsys_gnn.data.interactions import InteractionData

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")


def _identity(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def rating_triples(data: InteractionData, stage: str) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs (M, 2) int64, ratings (M,) float32)`` of ``stage`` ("train", "val" or "test").

    Raises:
        ConfigError: the data carries no ratings (it was not preprocessed with ``task="rating"``).
        EmptySplitError: the stage has no rows.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}; got {stage!r}")
    pairs = getattr(data, stage)
    ratings = getattr(data, f"{stage}_rating")
    if ratings is None:
        raise ConfigError(
            f"{data.protocol.get('dataset', 'dataset')}: no explicit ratings for {stage}; rating prediction "
            "needs data preprocessed with task=rating"
        )
    if len(pairs) != len(ratings):
        raise ValueError(f"{stage}: {len(pairs)} pairs but {len(ratings)} ratings")
    if len(pairs) == 0:
        raise EmptySplitError(f"{data.protocol.get('dataset', 'dataset')}: the {stage} split has no ratings")
    return np.asarray(pairs, dtype=np.int64), np.asarray(ratings, dtype=np.float32)


class RatingTriples(Dataset):
    """``(M,)`` triples served a whole batch at a time as ``{"user", "item", "rating"}`` tensors ``(B,)``."""

    def __init__(self, pairs: np.ndarray, ratings: np.ndarray) -> None:
        self.users = torch.as_tensor(pairs[:, 0], dtype=torch.long)
        self.items = torch.as_tensor(pairs[:, 1], dtype=torch.long)
        self.ratings = torch.as_tensor(ratings, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitems__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(idx, dtype=torch.long)
        return {"user": self.users[i], "item": self.items[i], "rating": self.ratings[i]}


class RatingDataModule(pl.LightningDataModule):
    """Shuffled training triples and ordered val/test triples.

    Args:
        data: a dataset preprocessed with ``task="rating"``.
        batch_size: training triples per step.
        eval_batch_size: triples per evaluation step.
        num_workers: DataLoader workers.
        seed: seeds the training shuffle.
    """

    def __init__(
        self,
        data: InteractionData,
        batch_size: int = 1024,
        eval_batch_size: int = 8192,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"batch sizes must be >= 1; got {batch_size} and {eval_batch_size}")
        self.data = data
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers, self.seed = int(num_workers), int(seed)
        self.sets = {stage: RatingTriples(*rating_triples(data, stage)) for stage in STAGES}

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.sets[stage],
            batch_size=self.batch_size if stage == "train" else self.eval_batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.num_workers,
            collate_fn=_identity,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
