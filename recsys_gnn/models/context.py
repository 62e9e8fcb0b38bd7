"""What a model may need from the run, computed lazily so id-only baselines never run the encoder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys_gnn.data.interactions import InteractionData

log = logging.getLogger(__name__)


class ModelContext:
    """Run-time inputs shared by every model.

    Args:
        data: the split, id-remapped dataset.
        encoder: a :class:`~recsys_gnn.models.encoder.TextEncoder` (or None for id-only runs).
        graph_builder: a builder from ``recsys_gnn.graph`` (config group ``graph``), or None.
        gnn: a factory ``gnn(dim=D) -> nn.Module`` (config group ``gnn``, ``_partial_``), or None.
    """

    def __init__(
        self,
        data: InteractionData,
        encoder: Any | None = None,
        graph_builder: Any | None = None,
        gnn: Callable[..., nn.Module] | None = None,
    ) -> None:
        self.data = data
        self.encoder = encoder
        self.graph_builder = graph_builder
        self.gnn = gnn

    @cached_property
    def item_text_emb(self) -> np.ndarray:
        """``(I, H)`` float32 LM embeddings of the item texts (cached on disk by the encoder).

        A dataset that supplies precomputed vectors (``data.item_vectors``, e.g. ``dataset=synthetic``) gives
        them as they are and the encoder is not run.
        """
        if self.data.item_vectors is not None:
            return np.asarray(self.data.item_vectors, dtype=np.float32)
        if self.encoder is None:
            raise ValueError(
                "this model needs item text embeddings but no encoder is configured (encoder=null)"
            )
        return self.encoder.encode(self.data.item_texts)

    @cached_property
    def graph(self):
        """The training graph from ``graph_builder`` (train pairs only)."""
        if self.graph_builder is None:
            raise ValueError("this model needs a graph but no graph builder is configured")
        needs_emb = getattr(self.graph_builder, "needs_item_emb", False)
        item_emb = self.item_text_emb if needs_emb else None
        g = self.graph_builder.build(
            self.data.train,
            self.data.n_users,
            self.data.n_items,
            item_emb=item_emb,
            weight=self.data.train_weight,
        )
        log.info(
            "graph %s: %d nodes, %d edges", type(self.graph_builder).__name__, g.num_nodes(), g.num_edges()
        )
        return g

    def train_matrix(self) -> torch.Tensor:
        """``(U, I)`` sparse COO tensor with row-normalised training interactions (row means)."""
        d = self.data
        users = torch.as_tensor(d.train[:, 0])
        items = torch.as_tensor(d.train[:, 1])
        counts = torch.bincount(users, minlength=d.n_users).clamp(min=1).float()
        vals = 1.0 / counts[users]
        return torch.sparse_coo_tensor(torch.stack([users, items]), vals, (d.n_users, d.n_items)).coalesce()
