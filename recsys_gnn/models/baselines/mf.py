"""BPR matrix factorisation on user and item id embeddings."""

from __future__ import annotations

import math
import numbers

from torch import Tensor, nn

from recsys_gnn.models.base import SIMILARITIES, Batch, Recommender, finish_tables
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.losses import batch_embedding_l2


def _is_finite_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_embedding_hparams(dim: int, weight_decay_emb: float, init_std: float) -> None:
    """Raise ValueError unless ``dim`` is an integer >= 1, ``weight_decay_emb >= 0`` and ``init_std > 0``."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not _is_finite_real(weight_decay_emb) or weight_decay_emb < 0:
        raise ValueError(f"weight_decay_emb must be a finite float >= 0, got {weight_decay_emb!r}")
    if not _is_finite_real(init_std) or init_std <= 0:
        raise ValueError(f"init_std must be a finite float > 0, got {init_std!r}")


def check_similarity(similarity: str) -> str:
    """Return ``similarity``, or raise ValueError unless it is one of ``SIMILARITIES``."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"model.similarity must be one of {SIMILARITIES}, got {similarity!r}")
    return similarity


class MatrixFactorization(Recommender):
    """Collaborative filtering with one free embedding per user and per item; score = dot product.

    Paper: Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.

    Differences from the paper: trained with minibatch Adam on the pipeline's sampled triples (and its
    ``bpr``/``bce`` loss choice) instead of SGD with bootstrap sampling; the L2 term is LightGCN-style, on the
    embeddings of the batch's users, positives and negatives, averaged over the batch. Items with no
    training interaction keep their random initial embedding (this model cannot score new items).

    Args:
        context: run-time data (``n_users``, ``n_items``).
        dim: embedding size D.
        weight_decay_emb: weight of the L2 term on the batch's embeddings, 0 disables.
        init_std: standard deviation of the normal initialisation.
        similarity: "dot" or "cosine" (tables L2-normalised; use with ``module.loss=softmax``).
    """

    needs_text = False

    def __init__(
        self,
        context: ModelContext,
        dim: int = 64,
        weight_decay_emb: float = 1e-4,
        init_std: float = 0.1,
        similarity: str = "dot",
    ) -> None:
        super().__init__()
        check_embedding_hparams(dim, weight_decay_emb, init_std)
        self.similarity = check_similarity(similarity)
        data = context.data
        self.n_users, self.n_items, self.dim = data.n_users, data.n_items, int(dim)
        self.weight_decay_emb = float(weight_decay_emb)
        self.init_std = float(init_std)
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.init_std)

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, D)`` user and ``(I, D)`` item embedding tables."""
        return finish_tables(self.similarity, self.user_emb.weight, self.item_emb.weight)

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return batch_embedding_l2(self.weight_decay_emb, batch, user_emb, item_emb)

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}, dim={self.dim}"
