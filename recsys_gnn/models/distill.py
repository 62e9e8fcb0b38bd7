"""Distillation: a small GNN compressor trained to match a teacher's ranking on top of BPR."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.models.base import Batch, ranking_loss
from recsys_gnn.models.compressor import GNNCompressor
from recsys_gnn.models.context import ModelContext

TEACHER_LM = "lm_content"


def teacher_tables(context: ModelContext, teacher: str) -> tuple[Tensor, Tensor]:
    """Teacher user/item tables ``(U, T)``, ``(I, T)``.

    Args:
        context: the run's context.
        teacher: ``"lm_content"`` (the frozen LM: cosine of item text vs. the mean of the user's items) or the
            path of an earlier run folder on the same dataset/split (its ``tables/`` are used).
    """
    if teacher == TEACHER_LM:
        items = F.normalize(torch.as_tensor(context.item_text_emb, dtype=torch.float32), dim=-1)
        users = F.normalize(torch.sparse.mm(context.train_matrix(), items), dim=-1)
        return users, items
    from recsys_gnn.tables import load_tables

    folder = Path(teacher)
    folder = folder / "tables" if (folder / "tables").is_dir() else folder
    tables = load_tables(folder)
    data = context.data
    if tables.item_ids != [str(i) for i in data.item_ids] or tables.user_ids != [
        str(u) for u in data.user_ids
    ]:
        protocol = folder.parent / "protocol.json"
        what = json.loads(protocol.read_text()).get("dataset") if protocol.exists() else "?"
        raise ValueError(
            f"teacher tables in {folder} (dataset {what}) index {len(tables.user_ids)} users/{len(tables.item_ids)} "
            f"items that differ from this run's {data.n_users}/{data.n_items}: the teacher must be trained on the "
            "same dataset, filtering and split (seed)"
        )
    return tables.user_emb.float(), tables.item_emb.float()


class DistilledCompressor(GNNCompressor):
    """A :class:`GNNCompressor` student with a listwise distillation term (Hinton et al., 2015).

    For each training triple the candidates are the positive, the sampled negatives and ``extra`` random items;
    the loss is ``rank_loss + w * T^2 * KL(softmax(t / T) || softmax(s / T))`` over the candidates, where ``t``
    are the teacher's scores (its dot products) and ``s`` the student's.

    Differences from the paper: teacher scores are standardised per user over the candidates before the
    temperature (teacher and student live on different scales, e.g. cosines vs. dot products).

    Args:
        context: run-time inputs.
        teacher: ``"lm_content"`` or a run folder of a trained teacher on the same data.
        distill_weight: w.
        temperature: T.
        extra: random extra candidates per triple.
        **kwargs: :class:`GNNCompressor` arguments (dim, user_init, ...).
    """

    def __init__(
        self,
        context: ModelContext,
        teacher: str = TEACHER_LM,
        distill_weight: float = 1.0,
        temperature: float = 1.0,
        extra: int = 16,
        **kwargs,
    ) -> None:
        super().__init__(context, **kwargs)
        if self.fanout is not None:  # loss() below scores full tables: the sampled path would be skipped
            raise ConfigError("model.fanout is not supported by model=distill; set model.fanout=null")
        if distill_weight < 0 or temperature <= 0 or extra < 0:
            raise ValueError(
                f"need distill_weight >= 0, temperature > 0, extra >= 0; got {distill_weight}, {temperature}, {extra}"
            )
        self.teacher = teacher
        self.distill_weight = distill_weight
        self.temperature = temperature
        self.extra = extra
        t_users, t_items = teacher_tables(context, teacher)
        self.register_buffer("teacher_users", t_users, persistent=False)
        self.register_buffer("teacher_items", t_items, persistent=False)

    def loss(self, batch: Batch, kind: str = "bpr", temperature: float = 1.0) -> tuple[Tensor, dict]:
        """Ranking loss ``kind`` (at ``temperature`` for softmax) plus the distillation term."""
        user_emb, item_emb = self.embed()
        users = batch["user"]
        neg = batch["neg"]
        if neg.dim() == 1:  # shared negatives: the same candidates for every row
            neg = neg[None].expand(len(users), -1)
        cand = [batch["pos"][:, None], neg]
        if self.extra:
            cand.append(torch.randint(0, self.n_items, (len(users), self.extra), device=users.device))
        cand = torch.cat(cand, 1)  # (B, C); column 0 is the positive
        s = torch.einsum("bd,bcd->bc", user_emb[users], item_emb[cand])  # (B, C)
        n_neg = neg.shape[1]
        rank = ranking_loss(kind, s[:, 0], s[:, 1 : 1 + n_neg], temperature, batch.get("neg_valid"))
        with torch.no_grad():
            t = torch.einsum("bd,bcd->bc", self.teacher_users[users], self.teacher_items[cand])
            t = (t - t.mean(1, keepdim=True)) / t.std(1, keepdim=True).clamp(min=1e-6)
        temp = self.temperature
        kl = F.kl_div(
            F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1), log_target=True, reduction="batchmean"
        )
        distill = kl * temp**2
        total = rank + self.distill_weight * distill + self.regularization(batch, user_emb, item_emb)
        return total, {"rank_loss": rank.detach(), "distill_loss": distill.detach()}

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, teacher={self.teacher}, w={self.distill_weight}, T={self.temperature}"
        )
