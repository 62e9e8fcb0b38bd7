"""LightGCN on free user/item id embeddings over the user-item graph: the standard graph CF baseline."""

from __future__ import annotations

import logging
from typing import Any

import dgl
import torch
from torch import Tensor, nn

from recsys_gnn.graph.sampled import check_fanout, node_rows, sampled_lightgcn
from recsys_gnn.graph.user_item import UserItemGraph
from recsys_gnn.models.base import Batch, GraphRecommender, finish_tables, ranking_loss, scored_rows
from recsys_gnn.models.baselines.mf import check_embedding_hparams, check_similarity
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.gnn.base import check_positive_int
from recsys_gnn.models.gnn.lightgcn import LightGCN
from recsys_gnn.models.losses import l2_reg

log = logging.getLogger(__name__)


class LightGCNId(GraphRecommender):
    """LightGCN: id embeddings ``E^(0)`` smoothed over the normalised user-item graph, layers averaged.

    Paper: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
    SIGIR 2020.

    ``E^(k+1) = D^-1/2 A D^-1/2 E^(k)`` on the bipartite graph of training interactions (no self loops, each
    user-item pair one edge of weight 1), output ``mean(E^(0), ..., E^(K))``, score = dot product, BPR loss
    plus ``weight_decay_emb`` times the L2 norm of the batch's layer-0 embeddings.

    Differences from the paper: the L2 term is averaged over the batch (as in the authors' code, ``l2_reg``)
    and Adam runs on the pipeline's sampled triples; the graph is always built here from the training pairs
    with :class:`~recsys_gnn.graph.user_item.UserItemGraph` (whatever the run's ``graph`` group says), with
    optional implicit edge weights (``use_weights``, off in the paper). Items without training users only keep
    ``E^(0) / (K + 1)``: like the paper's model it cannot score new items.

    Args:
        context: run-time data (``train``, ``n_users``, ``n_items``, ``train_weight``).
        dim: embedding size D.
        num_layers: propagation steps K, >= 1.
        weight_decay_emb: weight of the L2 term on the batch's layer-0 embeddings, 0 disables.
        init_std: standard deviation of the normal initialisation of ``E^(0)``.
        use_weights: weight edges by the dataset's implicit weights before normalising.
        similarity: "dot" or "cosine" (output tables L2-normalised; use with ``module.loss=softmax``).
        backend: propagation backend of :class:`~recsys_gnn.models.gnn.lightgcn.LightGCN` (``csr`` or ``dgl``).
        fanout: None (every training step propagates the whole graph) or neighbours sampled per node and layer
            (one int for every layer, or ``num_layers`` ints, input layer first; -1 = all): training steps then
            compute only the batch's rows from neighbour samples (:mod:`recsys_gnn.graph.sampled`, unbiased;
            O(batch x fanout^K) per step). :meth:`embed` (evaluation, export) stays the exact full propagation.
    """

    needs_text = False

    def __init__(
        self,
        context: ModelContext,
        dim: int = 64,
        num_layers: int = 3,
        weight_decay_emb: float = 1e-4,
        init_std: float = 0.1,
        use_weights: bool = False,
        similarity: str = "dot",
        backend: str = "csr",
        fanout: int | list[int] | None = None,
    ) -> None:
        super().__init__()
        check_embedding_hparams(dim, weight_decay_emb, init_std)
        self.similarity = check_similarity(similarity)
        num_layers = check_positive_int("num_layers", num_layers)
        self.fanout = check_fanout(fanout, num_layers)
        data = context.data
        self.n_users, self.n_items, self.dim = data.n_users, data.n_items, int(dim)
        self.weight_decay_emb = float(weight_decay_emb)
        self.init_std = float(init_std)
        builder = UserItemGraph(self_loops=False, use_weights=use_weights)
        self.graph: dgl.DGLGraph = builder.build(
            data.train, data.n_users, data.n_items, weight=data.train_weight if use_weights else None
        )
        log.info(
            "LightGCNId graph: %d nodes, %d directed edges", self.graph.num_nodes(), self.graph.num_edges()
        )
        self.user_emb = nn.Embedding(self.n_users, self.dim)
        self.item_emb = nn.Embedding(self.n_items, self.dim)
        self.propagate = LightGCN(dim=self.dim, num_layers=num_layers, backend=backend)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.init_std)

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, D)`` and ``(I, D)`` layer-averaged embeddings."""
        ego = torch.cat([self.user_emb.weight, self.item_emb.weight], 0)  # (U + I, D)
        out = self.propagate(self.graph, ego)  # (U + I, D)
        return finish_tables(self.similarity, out[: self.n_users], out[self.n_users :])

    def loss(
        self, batch: Batch, kind: str = "bpr", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Any]]:
        """:meth:`Recommender.loss <recsys_gnn.models.base.Recommender.loss>` with one row gather per table.

        The batch's user, positive and negative rows are taken from the propagated ``(U + I, D)`` table and
        from ``E^(0)`` (for the L2 term) in one ``index_select`` each, instead of one per kind of row. With a
        ``fanout``, in training, the rows come from neighbour samples instead (:meth:`sampled_rows`).
        """
        if self.training and self.fanout is not None:
            rows = self.batch_rows(batch)
            reg_rows = self.ego_rows(rows) if self.weight_decay_emb > 0 else None
            return self.rows_loss(self.sampled_rows(rows), reg_rows, batch, kind, temperature), {}
        ego = torch.cat([self.user_emb.weight, self.item_emb.weight], 0)  # (U + I, D)
        out = self.propagate(self.graph, ego)  # (U + I, D)
        return self.table_loss(out, ego, batch, kind, temperature), {}

    def batch_rows(self, batch: Batch) -> Tensor:
        """``(2B + B*N,)`` (or ``(2B + N,)`` with shared negatives) node ids of the batch's users, positives and
        negatives, in that order."""
        n = self.n_users
        return torch.cat([batch["user"], batch["pos"] + n, batch["neg"].reshape(-1) + n])

    def ego_rows(self, nodes: Tensor) -> Tensor:
        """``(R, D)`` layer-0 rows of node ids ``nodes`` ``(R,)`` (users first, then items), gathered per table."""
        return node_rows(nodes.to(self.user_emb.weight.device), self.n_users, self.user_emb, self.item_emb)

    def sampled_rows(self, nodes: Tensor) -> Tensor:
        """``(R, D)`` layer-combined rows of ``nodes`` ``(R,)`` from neighbour samples with ``fanout`` (unbiased
        estimates of the full propagation's rows; exact with every fanout -1)."""
        return sampled_lightgcn(
            self.graph,
            nodes,
            self.fanout,
            self.propagate.coef,
            self.ego_rows,
            backend=self.propagate.backend,
        )

    def table_loss(self, out: Tensor, ego: Tensor, batch: Batch, kind: str, temperature: float) -> Tensor:
        """The ranking loss (+ L2 on ``ego``) of a batch scored on the ``(U + I, D)`` table ``out``.

        Shared with models that propagate differently (:class:`~recsys_gnn.models.baselines.xsimgcl.XSimGCL`).
        """
        rows = self.batch_rows(batch)
        reg_rows = ego.index_select(0, rows) if self.weight_decay_emb > 0 else None
        return self.rows_loss(out.index_select(0, rows), reg_rows, batch, kind, temperature)

    def rows_loss(
        self, picked: Tensor, reg_rows: Tensor | None, batch: Batch, kind: str, temperature: float
    ) -> Tensor:
        """The ranking loss of the batch's propagated rows ``picked`` ``(R, D)`` (in :meth:`batch_rows` order),
        plus ``weight_decay_emb`` times the L2 of their layer-0 rows ``reg_rows`` ``(R, D)`` (None: no L2)."""
        neg = batch["neg"]
        b = batch["user"].shape[0]
        u, p, n = picked[:b], picked[b : 2 * b], picked[2 * b :]
        u, p, n = (scored_rows(self.similarity, t) for t in (u, p, n))  # the rows embed() would return
        pos_score = (u * p).sum(-1)  # (B,)
        if neg.dim() == 1:  # shared negatives: (B, D) x (D, N)
            neg_score = u @ n.T
        else:
            neg_score = torch.einsum("bd,bnd->bn", u, n.view(b, neg.shape[1], -1))  # (B, N)
        main = ranking_loss(kind, pos_score, neg_score, temperature, batch.get("neg_valid"))
        if self.weight_decay_emb <= 0 or reg_rows is None:
            return main
        # == weight_decay_emb * l2_reg(user rows, pos rows, neg rows) of E^(0)
        return main + self.weight_decay_emb * reg_rows.pow(2).sum() / (2 * b)

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """``weight_decay_emb * l2_reg`` of the batch's layer-0 user, positive and negative embeddings."""
        if self.weight_decay_emb <= 0:
            return user_emb.new_zeros(())
        return self.weight_decay_emb * l2_reg(
            self.user_emb(batch["user"]),
            self.item_emb(batch["pos"]),
            self.item_emb(batch["neg"]).flatten(0, 1),
        )

    def extra_repr(self) -> str:
        fanout = f", fanout={self.fanout}" if self.fanout is not None else ""
        return (
            f"users={self.n_users}, items={self.n_items}, dim={self.dim}, "
            f"backend={self.propagate.backend!r}{fanout}"
        )
