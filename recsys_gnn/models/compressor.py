"""The LM -> GNN compressor: item text embeddings projected to a small dim and propagated over a graph."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.eval.news import seen_in_training
from recsys_gnn.graph.sampled import check_fanout, node_rows, sampled_lightgcn
from recsys_gnn.models.base import (
    SIMILARITIES,
    Batch,
    GraphRecommender,
    finish_tables,
    pair_scores,
    ranking_loss,
)
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.gnn.lightgcn import LightGCN
from recsys_gnn.models.item_bias import (
    ItemBias,
    bias_init,
    strip_bias_column,
    unit_bias_column,
    with_bias_column,
)
from recsys_gnn.models.losses import batch_embedding_l2, info_nce
from recsys_gnn.models.projection import projection

USER_INITS = ("items", "text", "id")
COLD_SCALE_AUTO = "auto"


class GNNCompressor(GraphRecommender):
    """Compress frozen LM item embeddings ``(I, H)`` into ``(I, dim)`` tables through a GNN.

    Items enter as ``proj(X)`` (the projected text: linear or an MLP), never as id embeddings alone (unless
    ``item_id=True`` adds an id residual), so items with no interactions are still scored from their text.
    Users start from a learned id embedding (``user_init="id"``), the mean of their training items' projected
    text (``"items"``) or the projection of the mean of their items' raw text vectors (``"text"``, AlphaRec's
    choice; both of the latter also work for new users). On graphs with user nodes both are propagated
    together; on item-only graphs (item_item, item_knn) users are the mean of their items' propagated
    embeddings (+ the id embedding when ``user_init="id"``). Scores are dot products of the output tables, or
    cosines (``similarity="cosine"``: the tables are L2-normalised, so export and serving rank the same way).
    With ``item_bias`` a learned per-item offset is added, ``score(u, i) = <u, i> + b_i``, stored as the
    tables' last column (:mod:`recsys_gnn.models.item_bias`): the content part then has ``dim - 1`` columns,
    so the tables keep the width ``dim`` that compression and export count.

    With ``cl_weight > 0`` (``gnn=lightgcn`` only) training follows XSimGCL (Yu et al., TKDE 2023): every
    propagated layer gets random noise (``cl_eps``, relative to the row's norm, see
    :meth:`~recsys_gnn.models.gnn.lightgcn.LightGCN.perturbed`), the recommendation loss is taken on the
    perturbed tables, and ``cl_weight`` times an InfoNCE between the final rows and layer ``cl_layer``'s rows of
    the batch's unique users and positive items (cosine at ``cl_temperature``) is added. Evaluation propagates
    without noise.

    New items can be put on the warm items' scale by ``cold_scale``: outside training, the output rows of the
    items without a training interaction (text-only rows) are multiplied by a scalar ``s`` (their content
    part, before the bias column), so ``score(u, i) = s * <u, i>`` for them; the factor is folded into the
    tables, so evaluation, saved tables, export and serving rank with it unchanged (with cosine scores those
    rows then have norm ``s``). ``cold_scale="auto"`` trains with ``s = 1`` and lets the ranking job choose
    ``s`` on the validation set after training (:mod:`recsys_gnn.eval.cold_calibration`).

    With a ``fanout`` (``gnn=lightgcn`` on a graph with user nodes, ``user_init`` text or id, no ``cold_dropout``
    or ``cl_weight``) a training step projects and propagates only what the batch needs: the batch's users,
    positives and negatives are the seeds of per-layer neighbour samples (:mod:`recsys_gnn.graph.sampled`,
    rescaled so each row is an unbiased estimate of the full propagation), only the sampled nodes' inputs are
    computed, and :meth:`tables`' tail runs on the seed rows. A step then costs O(batch x fanout^K) instead of
    O(graph); evaluation and export still propagate the whole graph exactly.

    Args:
        context: run-time data, encoder, graph builder and GNN factory.
        dim: output (compressed) dimension D.
        user_init: "items" or "id".
        proj_layers: 1 = linear projection; >= 2 = an MLP with that many linear maps.
        proj_hidden: hidden width of the MLP (None: 2 * dim).
        proj_activation: activation between the MLP's layers (gelu, leaky_relu, relu, tanh).
        similarity: "dot" or "cosine" (see above).
        item_id: add a learned item-id embedding to the projected text (a residual; with ``cold_dropout`` the
            id rows of the dropped items are zeroed in that step too, so the text path alone must rank them).
        dropout: dropout on the projected inputs.
        weight_decay_emb: L2 weight on the batch's input embeddings (LightGCN-style), 0 disables.
        cold_dropout: during training, the fraction of items whose graph edges are dropped at each step, so
            that those items are represented by their text alone, as new items are at serving time
            (DropoutNet-style cold-start simulation; Volkovs et al., NeurIPS 2017). 0 disables.
        item_bias: add a learned per-item bias ``b_i`` to the score (dot similarity only); items without a
            training row, and cold-dropped items in their step, get the mean of the trained biases.
        item_bias_init: ``zero``, ``ctr`` (log smoothed training CTR; impression logs only) or ``pop``
            (log(1 + training interactions)), see :func:`~recsys_gnn.models.item_bias.bias_init`.
        cold_scale: factor on the rows of items without a training interaction, applied outside training: a
            number > 0 (1.0 = off) or ``"auto"`` (1.0 until :meth:`set_cold_scale` is called by the calibration).
        cold_scale_max_warm_loss: with ``cold_scale="auto"``, the largest relative loss of the warm items'
            validation NDCG@10 the chosen scale may cost (e.g. 0.05), or None: the best overall NDCG@10 wins.
        cl_weight: lambda of XSimGCL's cross-layer contrastive term (0: off).
        cl_eps: noise magnitude of the perturbed training pass, relative to each row's norm.
        cl_temperature: temperature of the contrastive InfoNCE.
        cl_layer: the layer (1..K) contrasted with the final rows.
        fanout: None (full-graph training steps) or neighbours sampled per node and layer: one int for every
            layer or one per GNN layer, input layer first; -1 = all (see above).
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
        proj_hidden: int | None = None,
        proj_activation: str = "gelu",
        similarity: str = "dot",
        item_bias: bool = False,
        item_bias_init: str = "zero",
        cold_scale: float | str = 1.0,
        cold_scale_max_warm_loss: float | None = None,
        cl_weight: float = 0.0,
        cl_eps: float = 0.1,
        cl_temperature: float = 0.2,
        cl_layer: int = 1,
        fanout: int | list[int] | None = None,
    ) -> None:
        super().__init__()
        if user_init not in USER_INITS:
            raise ValueError(f"user_init must be one of {USER_INITS}, got {user_init!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if int(proj_layers) < 1:
            raise ValueError(f"proj_layers must be >= 1, got {proj_layers}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.similarity = similarity
        self.item_bias = bool(item_bias)
        if self.item_bias and similarity != "dot":
            raise ConfigError(
                f"model.item_bias=true needs model.similarity=dot (got {similarity!r}): a cosine would normalise "
                "the bias column with the content; set model.similarity=dot or model.item_bias=false"
            )
        if self.item_bias and dim < 2:
            raise ConfigError(f"model.item_bias=true needs dim >= 2 (one column is the bias), got {dim}")
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
        if user_init == "text":  # the users' mean training text is constant: computed once, not every step
            self.register_buffer(
                "user_text", torch.sparse.mm(self.user_mean, text), persistent=False
            )  # (U, H)
        self.graph = context.graph
        self.has_user_nodes = bool(context.graph_builder.has_user_nodes)
        h = text.shape[1]
        width = dim - 1 if self.item_bias else dim  # the content part of the tables
        self.proj = projection(h, width, int(proj_layers), proj_hidden, proj_activation)
        self.user_emb = nn.Embedding(self.n_users, width) if user_init == "id" else None
        self.item_emb = nn.Embedding(self.n_items, width) if item_id else None
        self.biases: ItemBias | None = None
        if self.item_bias:
            seen = seen_in_training(data)
            self.biases = ItemBias(torch.from_numpy(seen), bias_init(item_bias_init, data, seen))
        self.item_bias_init = item_bias_init
        self.dropout = nn.Dropout(dropout)
        self.calibrate_cold = cold_scale == COLD_SCALE_AUTO
        untrained = np.bincount(np.asarray(data.train, dtype=np.int64)[:, 1], minlength=self.n_items) == 0
        self.register_buffer("untrained", torch.from_numpy(untrained), persistent=False)  # (I,) bool
        # Not persistent: restoring the best checkpoint for the test keeps a scale calibrated after training.
        self.register_buffer("cold_factor", torch.tensor(1.0), persistent=False)
        self.set_cold_scale(1.0 if self.calibrate_cold else cold_scale)
        loss = cold_scale_max_warm_loss
        if loss is not None and (
            isinstance(loss, bool) or not isinstance(loss, int | float) or not 0 <= loss < 1
        ):
            raise ConfigError(f"model.cold_scale_max_warm_loss must be in [0, 1) or null, got {loss!r}")
        if loss is not None and not self.calibrate_cold:
            raise ConfigError(
                f"model.cold_scale_max_warm_loss={loss} needs model.cold_scale=auto (got {cold_scale!r}); "
                "set model.cold_scale=auto or model.cold_scale_max_warm_loss=null"
            )
        self.cold_scale_max_warm_loss = None if loss is None else float(loss)
        self.gnn = gnn(dim=width)
        self.cl_weight, self.cl_eps = float(cl_weight), float(cl_eps)
        self.cl_temperature, self.cl_layer = float(cl_temperature), int(cl_layer)
        if self.cl_weight < 0 or self.cl_eps < 0 or self.cl_temperature <= 0:
            raise ConfigError(
                f"model.cl_weight and model.cl_eps must be >= 0 and model.cl_temperature > 0, got "
                f"{cl_weight!r}, {cl_eps!r}, {cl_temperature!r}"
            )
        if self.cl_weight > 0 and not hasattr(self.gnn, "perturbed"):
            raise ConfigError(
                f"model.cl_weight={cl_weight} (XSimGCL's contrastive term) needs gnn=lightgcn, got "
                f"{type(self.gnn).__name__}; set gnn=lightgcn or model.cl_weight=0"
            )
        if self.cl_weight > 0 and not 1 <= self.cl_layer <= self.gnn.num_layers:
            raise ConfigError(
                f"model.cl_layer must be in 1..{self.gnn.num_layers} (gnn layers), got {cl_layer!r}"
            )
        self.fanout = self._check_fanout(fanout)
        self.reset_parameters()

    def _check_fanout(self, fanout: int | list[int] | None) -> list[int] | None:
        """``model.fanout`` as one int per GNN layer, or None; refuses the settings the sampled path lacks."""
        if fanout is None:
            return None
        if not isinstance(self.gnn, LightGCN):
            raise ConfigError(
                f"model.fanout (neighbour-sampled training) needs gnn=lightgcn, got {type(self.gnn).__name__}; "
                "set gnn=lightgcn or model.fanout=null"
            )
        if not self.has_user_nodes:
            raise ConfigError(
                "model.fanout (neighbour-sampled training) needs a graph with user nodes (graph=user_item or "
                "hybrid); set graph=user_item or model.fanout=null"
            )
        if self.user_init == "items":
            raise ConfigError(
                "model.fanout does not support model.user_init=items (each sampled user would project all its "
                "training items' text); set model.user_init=text (or id) or model.fanout=null"
            )
        for key, value in (("cold_dropout", self.cold_dropout), ("cl_weight", self.cl_weight)):
            if value > 0:
                raise ConfigError(
                    f"model.fanout (neighbour-sampled training) does not support model.{key}={value}; "
                    f"set model.{key}=0 or model.fanout=null"
                )
        return check_fanout(fanout, self.gnn.num_layers)

    def reset_parameters(self) -> None:
        for emb in (self.user_emb, self.item_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.1)

    @property
    def cold_scale(self) -> float:
        """The factor on the rows of items without a training interaction (1.0: off)."""
        return float(self.cold_factor)

    def set_cold_scale(self, value: float | str) -> None:
        """Set the factor on untrained items' rows (what ``cold_scale="auto"``'s calibration calls)."""
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
        if not ok:
            raise ConfigError(f"model.cold_scale must be a number > 0 or {COLD_SCALE_AUTO!r}, got {value!r}")
        self.cold_factor.fill_(float(value))

    def _cold_rows(self, items: Tensor, item_ids: Tensor | None = None) -> Tensor:
        """``(I, D)`` factor per item row: ``cold_scale`` on the untrained items' content part, else 1
        (``item_ids``: the ids of ``items``' rows when they are a subset of the catalogue)."""
        untrained = self.untrained if item_ids is None else self.untrained[item_ids]
        factor = torch.where(untrained, self.cold_factor, torch.ones_like(self.cold_factor))  # (I,)
        factor = factor.to(items.dtype)[:, None].expand(-1, items.shape[1])
        if self.item_bias:  # the bias column is an offset, not part of the scaled content
            factor = torch.cat([factor[:, :-1], factor.new_ones(factor.shape[0], 1)], 1)
        return factor

    def _scales_cold(self) -> bool:
        return not self.training and self.cold_scale != 1.0

    def inputs(self, dropped: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Input features before propagation: ``(U, D)`` users, ``(I, D)`` items.

        ``dropped``: ``(I,)`` bool of items trained as new in this step (their id rows are left out)."""
        text = self.proj(self.item_text)  # (I, D)
        items = text
        if self.item_emb is not None:
            ids = self.item_emb.weight
            if dropped is not None:
                ids = ids * (~dropped).to(ids.dtype)[:, None]
            items = items + ids
        if self.user_emb is not None:
            users = self.user_emb.weight  # (U, D)
        elif self.user_init == "text":
            users = self.proj(self.user_text)  # (U, D)
        else:
            users = torch.sparse.mm(self.user_mean, text)  # (U, D)
        return self.dropout(users), self.dropout(items)

    def node_inputs(self, nodes: Tensor) -> Tensor:
        """``(n, D')`` input rows of graph nodes ``nodes`` ``(n,)`` (users ``0..U-1``, then items): the rows
        :meth:`inputs` gives them (no cold-dropped items), computed for those nodes only."""
        if self.user_emb is None and self.user_init != "text":
            # refused with a fanout (see _check_fanout): a user's items would all be projected
            raise ValueError("node_inputs needs model.user_init=text or id")

        def items(item_ids: Tensor) -> Tensor:
            rows = self.proj(self.item_text[item_ids])  # (n_i, D')
            return rows + self.item_emb(item_ids) if self.item_emb is not None else rows

        def users(user_ids: Tensor) -> Tensor:
            if self.user_emb is not None:
                return self.user_emb(user_ids)  # (n_u, D')
            return self.proj(self.user_text[user_ids])  # (n_u, D')

        out = node_rows(nodes.to(self.item_text.device), self.n_users, users, items)
        return self.dropout(out)

    def dropped_items(self) -> Tensor | None:
        """``(I,)`` bool of the items cold-dropped in this training step, or None (eval, or no cold_dropout)."""
        if not (self.training and self.cold_dropout > 0):
            return None
        return torch.rand(self.n_items, device=self.item_text.device) < self.cold_dropout  # (I,)

    def edge_weight(self, dropped: Tensor | None) -> Tensor | None:
        """Edge weights for this step: None (the GNN's own default) unless items are cold-dropped in training."""
        if dropped is None:
            return None
        if self.has_user_nodes:
            dropped = torch.cat([torch.zeros(self.n_users, dtype=torch.bool, device=dropped.device), dropped])
        # the graph may stay on the CPU while the module is on a GPU (CSR propagation): work on dropped's device
        src, dst = (t.to(dropped.device) for t in self.graph.edges())
        # Self loops of dropped items stay: only messages from other nodes are removed.
        keep = ~((dropped[src] | dropped[dst]) & (src != dst))  # (E,)
        uses_norm = getattr(self.gnn, "use_edge_weight", True)
        w = self.graph.edata["w"].to(dropped.device)
        base = w if uses_norm else torch.ones_like(w)
        return base * keep.to(base.dtype)

    def propagated(
        self, dropped: Tensor | None, perturbed: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(U, D')`` users and ``(I, D')`` items after the GNN, before normalisation; with ``perturbed`` (the
        contrastive training pass) also the noisy layer ``cl_layer``'s users and items, else two Nones."""
        users, items = self.inputs(dropped)
        weight = self.edge_weight(dropped)

        def gnn(feat: Tensor) -> tuple[Tensor, Tensor | None]:
            if perturbed:
                return self.gnn.perturbed(self.graph, feat, self.cl_eps, self.cl_layer, weight)
            return self.gnn(self.graph, feat, weight), None

        if self.has_user_nodes:
            out, view = gnn(torch.cat([users, items], 0))  # (U + I, D')
            view_users = None if view is None else view[: self.n_users]
            view_items = None if view is None else view[self.n_users :]
            return out[: self.n_users], out[self.n_users :], view_users, view_items
        id_rows = users if self.user_emb is not None else None
        items, view_items = gnn(items)  # (I, D')

        def users_of(rows: Tensor) -> Tensor:
            from_items = torch.sparse.mm(self.user_mean, rows)  # (U, D')
            return from_items + id_rows if id_rows is not None else from_items

        view_users = None if view_items is None else users_of(view_items)
        return users_of(items), items, view_users, view_items

    def embed(self) -> tuple[Tensor, Tensor]:
        """``(U, D)`` and ``(I, D)`` output tables (L2-normalised rows when ``similarity="cosine"``; with
        ``item_bias`` the last column is ``1`` in user rows and ``b_i`` in item rows)."""
        dropped = self.dropped_items()
        users, items, _, _ = self.propagated(dropped)
        return self.tables(users, items, dropped)

    def tables(
        self, users: Tensor, items: Tensor, dropped: Tensor | None, item_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The scored tables from propagated rows: normalisation, bias column, cold scale (see :meth:`embed`).

        ``item_ids``: ``(n,)`` ids of ``items``' rows when they are only some items (the sampled path), else None.
        """
        users, items = finish_tables(self.similarity, users, items)
        if self.biases is not None:
            bias = self.biases(dropped)  # (I,)
            bias = bias if item_ids is None else bias[item_ids]
            users, items = with_bias_column(users, items, bias)  # (U, D), (I, D)
        if self._scales_cold():
            items = items * self._cold_rows(items, item_ids)
        return users, items

    def loss(
        self, batch: Batch, kind: str = "bpr", temperature: float = 1.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The base loss; with ``cl_weight > 0`` in training, on the perturbed tables plus ``cl_weight`` times
        the contrastive term (logged unweighted as ``cl_loss``); with a ``fanout`` in training, from neighbour
        samples (:meth:`sampled_loss`)."""
        if self.training and self.fanout is not None:
            return self.sampled_loss(batch, kind, temperature)
        if not (self.training and self.cl_weight > 0):
            return super().loss(batch, kind, temperature)
        dropped = self.dropped_items()
        users, items, view_users, view_items = self.propagated(dropped, perturbed=True)
        user_emb, item_emb = self.tables(users, items, dropped)
        pos, neg = pair_scores(user_emb[batch["user"]], item_emb, batch)
        main = ranking_loss(kind, pos, neg, temperature, batch.get("neg_valid"))
        main = main + self.regularization(batch, user_emb, item_emb)
        u, i = torch.unique(batch["user"]), torch.unique(batch["pos"])
        cl = info_nce(users[u], view_users[u], self.cl_temperature)
        cl = cl + info_nce(items[i], view_items[i], self.cl_temperature)
        return main + self.cl_weight * cl, {"cl_loss": cl.detach()}

    def sampled_loss(self, batch: Batch, kind: str = "bpr", temperature: float = 1.0) -> tuple[Tensor, dict]:
        """:meth:`Recommender.loss <recsys_gnn.models.base.Recommender.loss>` on the rows of the batch's distinct
        users and items only, each from neighbour samples with ``fanout`` (:mod:`recsys_gnn.graph.sampled`).

        The batch is re-indexed into those rows, so scoring, the ranking loss and :meth:`regularization` are the
        full path's; with every fanout -1 the loss equals it.
        """
        users, pos, neg = batch["user"], batch["pos"], batch["neg"]
        b = users.shape[0]
        user_ids, user_at = torch.unique(users, return_inverse=True)  # (n_u,), (B,)
        item_ids, item_at = torch.unique(torch.cat([pos, neg.reshape(-1)]), return_inverse=True)  # (n_i,)
        seeds = torch.cat([user_ids, item_ids + self.n_users])  # (n_u + n_i,)
        out = sampled_lightgcn(
            self.graph, seeds, self.fanout, self.gnn.coef, self.node_inputs, backend=self.gnn.backend
        )  # (n_u + n_i, D')
        n_u = user_ids.shape[0]
        user_rows, item_rows = self.tables(out[:n_u], out[n_u:], None, item_ids)
        local: Batch = {"user": user_at, "pos": item_at[:b], "neg": item_at[b:].view(neg.shape)}
        if "neg_valid" in batch:
            local["neg_valid"] = batch["neg_valid"]
        pos_score, neg_score = pair_scores(user_rows[user_at], item_rows, local)
        main = ranking_loss(kind, pos_score, neg_score, temperature, local.get("neg_valid"))
        return main + self.regularization(local, user_rows, item_rows), {}

    def fold_in(self, cache: tuple[Tensor, Tensor], history: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        """Cold users as the mean of their items' rows as stored (see the base class; what serving's
        ``recommend_for_items`` does), the bias column kept at 1; the item rows are returned as given, so
        ``cold_scale`` rows are not normalised back to unit length."""
        users, items = super().fold_in(cache, history, n_users)
        items = cache[1] if self._scales_cold() else items
        return (unit_bias_column(users) if self.item_bias else users), items

    def regularization(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        if self.item_bias:  # the content part only (the biases are not embeddings)
            user_emb, item_emb = strip_bias_column(user_emb), strip_bias_column(item_emb)
        return batch_embedding_l2(self.weight_decay_emb, batch, user_emb, item_emb)

    def extra_repr(self) -> str:
        bias = f", item_bias={self.item_bias_init}" if self.item_bias else ""
        if self.calibrate_cold:
            bias += f", cold_scale=auto ({self.cold_scale:g})"
        elif self.cold_scale != 1.0:
            bias += f", cold_scale={self.cold_scale:g}"
        return (
            f"users={self.n_users}, items={self.n_items}, dim={self.dim}, user_init={self.user_init}, "
            f"cold_dropout={self.cold_dropout}, similarity={self.similarity}{bias}"
            + (f", cl_weight={self.cl_weight}, cl_eps={self.cl_eps}" if self.cl_weight > 0 else "")
            + (f", fanout={self.fanout}" if self.fanout is not None else "")
        )
