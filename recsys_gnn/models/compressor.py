"""The LM -> GNN compressor: item text embeddings projected to a small dim and propagated over a graph."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from recsys_gnn.models.base import Batch, GraphRecommender
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.losses import batch_embedding_l2

USER_INITS = ("items", "id")


class GNNCompressor(GraphRecommender):
    """Compress frozen LM item embeddings ``(I, H)`` into ``(I, dim)`` tables through a GNN.

    Items enter as ``X W_p`` (the projected text), never as id embeddings (unless ``item_id=True``), so items
    with no interactions are still scored from their text. Users start from a learned id embedding
    (``user_init="id"``) or the mean of their training items' projected text (``user_init="items"``, which
    also works for new users). On graphs with user nodes both are propagated together; on item-only graphs
    (item_item, item_knn) users are the mean of their items' propagated embeddings (+ the id embedding when
    ``user_init="id"``). Scores are dot products.

    Args:
        context: run-time data, encoder, graph builder and GNN factory.
        dim: output (compressed) dimension D.
        user_init: "items" or "id".
        proj_layers: 1 = linear projection; 2 = Linear-GELU-Linear.
        item_id: add a learned item-id embedding to the projected text (hurts cold items; off by default).
        dropout: dropout on the projected inputs.
        weight_decay_emb: L2 weight on the batch's input embeddings (LightGCN-style), 0 disables.
        cold_dropout: during training, the fraction of items whose graph edges are dropped at each step, so
            that those items are represented by their text alone, as new items are at serving time
            (DropoutNet-style cold-start simulation; Volkovs et al., NeurIPS 2017). 0 disables.
    """

    def __init__(
        self,
        context: ModelContext,
        dim: int = 64,
        user_init: str = "items",
        proj_layers: int = 1,
        item_id: bool = False,
        dropout: float = 0.0,
        weight_decay_emb: float = 0.0,
        cold_dropout: float = 0.0,
        gnn: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if user_init not in USER_INITS:
            raise ValueError(f"user_init must be one of {USER_INITS}, got {user_init!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if proj_layers not in (1, 2):
            raise ValueError(f"proj_layers must be 1 or 2, got {proj_layers}")
        gnn = gnn or context.gnn
        if gnn is None:
            raise ValueError("GNNCompressor needs a gnn (config group `gnn`)")
        data = context.data
        self.n_users, self.n_items, self.dim = data.n_users, data.n_items, dim
        self.user_init = user_init
        self.weight_decay_emb = weight_decay_emb
        if not 0.0 <= cold_dropout < 1.0:
            raise ValueError(f"cold_dropout must be in [0, 1), got {cold_dropout}")
        self.cold_dropout = float(cold_dropout)
        text = torch.as_tensor(context.item_text_emb, dtype=torch.float32)  # (I, H)
        self.register_buffer("item_text", text, persistent=False)
        self.register_buffer("user_mean", context.train_matrix(), persistent=False)  # sparse (U, I)
        self.graph = context.graph
        self.has_user_nodes = bool(context.graph_builder.has_user_nodes)
        h = text.shape[1]
        if proj_layers == 1:
            self.proj = nn.Linear(h, dim)
        else:
            self.proj = nn.Sequential(nn.Linear(h, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.user_emb = nn.Embedding(self.n_users, dim) if user_init == "id" else None
        self.item_emb = nn.Embedding(self.n_items, dim) if item_id else None
        self.dropout = nn.Dropout(dropout)
        self.gnn = gnn(dim=dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in (self.user_emb, self.item_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.1)

    def inputs(self) -> tuple[Tensor, Tensor]:
        """Input features before propagation: ``(U, D)`` users, ``(I, D)`` items."""
        items = self.proj(self.item_text)  # (I, D)
        if self.item_emb is not None:
            items = items + self.item_emb.weight
        if self.user_emb is not None:
            users = self.user_emb.weight  # (U, D)
        else:
            users = torch.sparse.mm(self.user_mean, items)  # (U, D)
        return self.dropout(users), self.dropout(items)

    def edge_weight(self) -> Tensor | None:
        """Edge weights for this step: None (the GNN's own default) unless items are cold-dropped in training."""
        if not (self.training and self.cold_dropout > 0):
            return None
        dropped = torch.rand(self.n_items, device=self.item_text.device) < self.cold_dropout  # (I,)
        if self.has_user_nodes:
            dropped = torch.cat([torch.zeros(self.n_users, dtype=torch.bool, device=dropped.device), dropped])
        src, dst = self.graph.edges()
        # Self loops of dropped items stay: only messages from other nodes are removed.
        keep = ~((dropped[src] | dropped[dst]) & (src != dst))  # (E,)
        uses_norm = getattr(self.gnn, "use_edge_weight", True)
        base = self.graph.edata["w"] if uses_norm else torch.ones_like(self.graph.edata["w"])
        return base * keep.to(base.dtype)

    def embed(self) -> tuple[Tensor, Tensor]:
        users, items = self.inputs()
        weight = self.edge_weight()
        if self.has_user_nodes:
            out = self.gnn(self.graph, torch.cat([users, items], 0), weight)  # (U + I, D)
            return out[: self.n_users], out[self.n_users :]
        items = self.gnn(self.graph, items, weight)  # (I, D)
        from_items = torch.sparse.mm(self.user_mean, items)  # (U, D)
        return (from_items + users if self.user_emb is not None else from_items), items

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return batch_embedding_l2(self.weight_decay_emb, batch, user_emb, item_emb)

    def extra_repr(self) -> str:
        return (
            f"users={self.n_users}, items={self.n_items}, dim={self.dim}, user_init={self.user_init}, "
            f"cold_dropout={self.cold_dropout}"
        )
