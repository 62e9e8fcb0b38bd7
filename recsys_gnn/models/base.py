"""The contract every recommender implements (RecBole-style): embed, score, loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsys_gnn.models.losses import bce_loss, bpr_loss, softmax_loss

LOSSES = ("bpr", "bce", "softmax")
SIMILARITIES = ("dot", "cosine")

Batch = dict[str, Tensor]


class Recommender(nn.Module):
    """Base class: a model that produces user/item embeddings and is trained on (user, pos, neg) batches.

    Subclasses implement :meth:`embed`. Scores are dot products unless :meth:`score` is overridden.
    ``trainable = False`` marks models with nothing to fit (popularity, frozen LM content ranking).
    ``needs_text`` tells the pipeline whether the model uses item text at all.
    """

    trainable: bool = True
    needs_text: bool = True
    similarity: str = "dot"  # "cosine": embed() returns L2-normalised rows (see finish_tables)

    def embed(self) -> tuple[Tensor, Tensor]:
        """Return ``(user_emb (U, D), item_emb (I, D))`` for the current parameters."""
        raise NotImplementedError

    def score(self, users: Tensor, cache: tuple[Tensor, Tensor]) -> Tensor:
        """Scores of every item for ``users`` (B,) -> ``(B, I)`` given ``cache = embed()``."""
        user_emb, item_emb = cache
        return user_emb[users] @ item_emb.T

    def fold_in(self, cache: tuple[Tensor, Tensor], history: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        """Represent users from items they are known to like at evaluation time (new/cold users).

        Args:
            cache: ``embed()`` output.
            history: ``(M, 2)`` [user, item] pairs known at evaluation time.
            n_users: U.
        Returns:
            ``cache`` with the rows of users in ``history`` replaced by the mean of their items' embeddings.
        """
        if history.numel() == 0:
            return cache
        user_emb, item_emb = cache
        users = history[:, 0]
        summed = torch.zeros(n_users, item_emb.shape[1], dtype=item_emb.dtype, device=item_emb.device)
        summed.index_add_(0, users, item_emb[history[:, 1]])
        counts = torch.bincount(users, minlength=n_users).to(item_emb.dtype)
        has = counts > 0
        user_emb = user_emb.clone()
        user_emb[has] = summed[has] / counts[has, None]
        return finish_tables(self.similarity, user_emb, item_emb)

    def loss(
        self, batch: Batch, kind: str = "bpr", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Any]]:
        """Training loss for a batch with ``user (B,)``, ``pos (B,)`` and ``neg``.

        ``neg`` is ``(B, N)`` (negatives per user) or ``(N,)`` (one set shared by the batch, scored with one
        matrix product); with shared negatives ``neg_valid (B, N)`` marks the ones that are not the user's
        own training items. ``kind`` is ``bpr``, ``bce`` or ``softmax`` (sampled softmax over the positive and
        the N negatives at ``temperature``). Returns the loss and a dict of extra scalars to log.
        """
        user_emb, item_emb = self.embed()
        u = user_emb[batch["user"]]  # (B, D)
        pos, neg = pair_scores(u, item_emb, batch)
        main = ranking_loss(kind, pos, neg, temperature, batch.get("neg_valid"))
        return main + self.regularization(batch, user_emb, item_emb), {}

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Extra loss terms (e.g. L2 on the batch's embeddings); zero by default."""
        return user_emb.new_zeros(())


def pair_scores(u: Tensor, item_emb: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    """``(B,)`` positive and ``(B, N)`` negative dot products of user rows ``u (B, D)`` (see ``loss``)."""
    pos = (u * item_emb[batch["pos"]]).sum(-1)  # (B,)
    neg_idx = batch["neg"]
    if neg_idx.dim() == 1:  # shared negatives: one (B, D) x (D, N) product
        neg = u @ item_emb[neg_idx].T  # (B, N)
    else:
        neg = torch.einsum("bd,bnd->bn", u, item_emb[neg_idx])  # (B, N)
    return pos, neg


def ranking_loss(
    kind: str, pos: Tensor, neg: Tensor, temperature: float = 1.0, neg_valid: Tensor | None = None
) -> Tensor:
    """The loss ``kind`` (one of :data:`LOSSES`) of ``(B,)`` positive and ``(B, N)`` negative scores."""
    if kind == "softmax":
        return softmax_loss(pos, neg, temperature, neg_valid)
    if neg_valid is not None:
        # pairwise losses over shared negatives: drop the user's own items by zero weight
        w = neg_valid.to(neg.dtype)
        if kind == "bpr":
            return (-F.logsigmoid(pos[:, None] - neg) * w).sum() / w.sum().clamp_min(1)
        if kind == "bce":
            neg_l = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none")
            pos_l = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
            return pos_l + (neg_l * w).sum() / w.sum().clamp_min(1)
    if kind == "bpr":
        return bpr_loss(pos, neg)
    if kind == "bce":
        return bce_loss(pos, neg)
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")


def scored_rows(similarity: str, rows: Tensor) -> Tensor:
    """``(..., D)`` rows as they are scored: unchanged for ``dot``, L2-normalised for ``cosine``."""
    if similarity == "cosine":
        return F.normalize(rows, dim=-1)
    if similarity != "dot":
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    return rows


def finish_tables(similarity: str, user_emb: Tensor, item_emb: Tensor) -> tuple[Tensor, Tensor]:
    """Tables as they are scored (:func:`scored_rows`), so that every consumer of ``embed()`` - training,
    evaluation, export, serving - ranks by the same similarity."""
    return scored_rows(similarity, user_emb), scored_rows(similarity, item_emb)


class GraphRecommender(Recommender):
    """A recommender holding a DGL graph in ``self.graph``.

    The graph follows the module across devices only when one of its GNNs runs DGL kernels
    (:meth:`graph_follows_device`). GNNs with ``backend="csr"`` read just the graph's edges and weights, on the
    CPU, and keep their own device copy of the CSR structure (:mod:`recsys_gnn.graph.spmm`): so they train on a
    GPU with the CPU-only DGL wheel (``recsys_gnn.distributed.dgl_device_settings`` is the config-level twin).
    """

    graph: Any

    def graph_follows_device(self) -> bool:
        """Whether DGL message passing runs on the module's device (a GNN without ``backend="csr"``)."""
        from recsys_gnn.models.gnn.base import GNNStack

        gnns = [m for m in self.modules() if isinstance(m, GNNStack)]
        return not gnns or any(getattr(m, "backend", None) != "csr" for m in gnns)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        graph = getattr(self, "graph", None)
        if graph is None:
            return out
        device = fn(torch.zeros(1)).device
        if not self.graph_follows_device():
            device = torch.device("cpu")
        if graph.device != device:
            self.graph = graph.to(device)
        return out
