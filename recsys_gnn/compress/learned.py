"""Ranking-trained PQ / RQ codebooks (JPQ-style): post-hoc codes whose centroids are then trained to rank.

Method (Zhan et al., CIKM 2021, "Jointly Optimizing Query Encoder and Product Quantization to Improve Retrieval
Performance"; the distillation term follows Xiao et al., SIGIR 2022, "Distill-VQ"):

1. Code the trained item table post hoc with an existing scheme (``pq4`` ... ``opq16``, ``rq4`` ... ``rq16``:
   :meth:`~recsys_gnn.compress.quantize.Quantizer.encode_items`): codebooks ``C`` and each item's codes.
2. Keep every item's codes fixed and train the centroids ``C`` (and the exact fp32 user table ``U``, which is
   what serving stores) on the *training* interactions, scoring each user against the whole decoded catalogue
   exactly as served: ``s(u, i) = sim(u) . decode(code_i) / T`` with ``sim`` = the run's ``model.similarity``
   (cosine: the user row is L2-normalised; the decoded item is *not*, as serving never renormalises it) and ``T``
   the run's ``module.temperature``. Losses (``LearnSettings.loss``), per user, averaged over a batch:

   - ``softmax``: full-softmax log-likelihood of the user's training items,
     ``-1/|P_u| sum_{i in P_u} log softmax_j(s(u, j))_i`` (multinomial likelihood; no sampling: 6k-18k items);
   - ``distill``: listwise KL from the fp32 teacher, ``KL(softmax(t_u) || softmax(s_u))`` with
     ``t(u, i) = sim(u0) . x_i / T`` the served fp32 scores of the run's own tables;
   - ``softmax+distill``: their sum, the KL weighted by ``distill_weight``.
3. After every epoch, rank the validation split (train items masked) with the served scorer; keep the state with
   the best ``val/ndcg@10``, stop after ``patience`` epochs without a gain (epoch 0 = the post-hoc codes, so the
   result is never worse on validation than post-hoc). Test is ranked once, at the kept state.

Differences from JPQ: the "query encoder" is the user table itself (no text encoder is trained); the loss is a
full softmax over the catalogue instead of sampled hard negatives; optional periodic re-assignment of codes
(``reassign_every``) re-codes the fp32 item table under the trained codebooks (reconstruction, not ranking, picks
the codes: JPQ keeps them fixed, the default here).

The learned tables are stored exactly as :meth:`Quantizer.compress` stores the post-hoc ones (``user_emb`` (U, D)
float32, ``item_emb`` (I, M) uint8 codes, ``pq_codebooks`` (M, 256, D / M or D) float32, ``pq_rotation`` for OPQ),
so :meth:`Quantizer.split` / :meth:`Quantizer.scores` and the serving artifact read them unchanged.

CLI: ``python -m recsys_gnn.compress.learned --run <run folder> --schemes rq8,pq8,rq4,pq4 --out <dir>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from recsys_gnn.compress.quantize import PQ_SUBSPACES, Encoded, Quantizer, pq_decode, pq_encode
from recsys_gnn.data.errors import ConfigError, DataError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.ranking import evaluate_full_ranking
from recsys_gnn.models.base import SIMILARITIES, scored_rows

log = logging.getLogger(__name__)

LEARNABLE = tuple(PQ_SUBSPACES)  # pq*, opq*, rq*: every scheme with codebooks
LOSSES = ("softmax", "distill", "softmax+distill")
SELECT_METRIC = "ndcg@10"
RUN_FILES = ("config.yaml", "tables/embeddings.safetensors", "tables/known.safetensors", "tables/index.json")


@dataclass(frozen=True)
class LearnSettings:
    """How the codebooks are trained (see the module docstring).

    Attributes:
        loss: one of :data:`LOSSES`.
        distill_weight: weight of the KL term in ``softmax+distill``.
        lr: Adam learning rate of the codebooks.
        user_lr: Adam learning rate of the user table (0: users stay as trained).
        batch_size: users per step.
        max_epochs: passes over the users with training items.
        patience: epochs without a gain in ``val/ndcg@10`` before stopping.
        temperature: softmax temperature; None = the run's ``module.temperature``.
        reassign_every: re-code the items under the current codebooks every this many epochs (0: never).
        max_seconds: stop training a scheme after this long (the best state so far is kept).
        seed: seed of the user order (the post-hoc codes use the quantiser's own fixed seed).
    """

    loss: str = "softmax+distill"
    distill_weight: float = 1.0
    lr: float = 1e-3
    user_lr: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 20
    temperature: float | None = None
    reassign_every: int = 0
    max_seconds: float = 480.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; expected one of {', '.join(LOSSES)}")
        positive = {"batch_size": self.batch_size, "max_epochs": self.max_epochs, "patience": self.patience}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1; got {value}")
        nonneg = {
            "lr": self.lr,
            "user_lr": self.user_lr,
            "distill_weight": self.distill_weight,
            "reassign_every": self.reassign_every,
            "max_seconds": self.max_seconds,
        }
        for name, value in nonneg.items():
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0; got {value}")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0; got {self.temperature}")


def check_schemes(schemes: Sequence[str]) -> list[str]:
    """The scheme names, validated (a :class:`ConfigError` names the unknown one and the allowed values)."""
    names = [s.strip() for s in schemes if s.strip()]
    if not names:
        raise ConfigError(f"no scheme given; expected some of {', '.join(LEARNABLE)}")
    for name in names:
        if name not in LEARNABLE:
            raise ConfigError(
                f"unknown scheme {name!r} for learned codes; expected one of {', '.join(LEARNABLE)}"
            )
    return names


class CodedTables(nn.Module):
    """Exact user rows plus items coded by fixed codes into trainable codebooks.

    Args:
        scheme: a :data:`LEARNABLE` name (fixes M, PQ vs residual, OPQ rotation).
        users: ``(U, D)`` float user table (as scored: already normalised for cosine runs).
        items: the post-hoc :class:`Encoded` item table (codes ``(I, M)`` uint8, codebooks ``(M, 256, w)``).
        similarity: ``"cosine"`` (user rows normalised when scored) or ``"dot"``.
    """

    def __init__(self, scheme: str, users: Tensor, items: Encoded, similarity: str) -> None:
        super().__init__()
        check_schemes([scheme])
        if similarity not in SIMILARITIES:
            raise ConfigError(f"similarity must be one of {SIMILARITIES}; got {similarity!r}")
        if not items.pq_coded or items.codebooks is None:
            raise ConfigError(f"{scheme} items must be PQ/RQ codes (Quantizer.encode_items)")
        if users.dim() != 2 or users.shape[1] != items.dim:
            raise ConfigError(f"users must be (U, {items.dim}); got {tuple(users.shape)}")
        self.scheme, self.similarity, self.dim = scheme, similarity, items.dim
        self.additive = items.additive
        self.users = nn.Parameter(users.detach().to(torch.float32).clone())  # (U, D)
        self.codebooks = nn.Parameter(items.codebooks.detach().clone())  # (M, 256, D / M) or (M, 256, D)
        self.register_buffer("codes", items.data.clone())  # (I, M) uint8, fixed (or re-assigned)
        self.rotation = None if items.rotation is None else items.rotation.detach().clone()  # (D, D)

    def extra_repr(self) -> str:
        return (
            f"{self.scheme}, users={tuple(self.users.shape)}, codes={tuple(self.codes.shape)}, "
            f"codebooks={tuple(self.codebooks.shape)}, similarity={self.similarity}"
        )

    def user_rows(self, idx: Tensor | None = None) -> Tensor:
        """``(B, D)`` user rows as scored (normalised for cosine); all users when ``idx`` is None."""
        rows = self.users if idx is None else self.users[idx]
        return scored_rows(self.similarity, rows)

    def decode(self) -> Tensor:
        """``(I, D)`` decoded items (differentiable in the codebooks)."""
        return pq_decode(self.codes, self.codebooks, self.rotation, self.additive)

    def scores(self, idx: Tensor) -> Tensor:
        """``(B, I)`` served scores ``user . decode(code_i)`` of users ``idx`` ``(B,)`` (before the temperature)."""
        return self.user_rows(idx) @ self.decode().T

    def encoded(self) -> tuple[Encoded, Encoded]:
        """The current tables in served form: exact users, coded items (detached copies)."""
        with torch.no_grad():
            users = self.user_rows().detach().clone().contiguous()
        items = Encoded(self.codes.clone(), None, self.dim, self.codebooks.detach().clone(), self.rotation)
        return Encoded(users, None, self.dim), items

    def stored(self) -> dict[str, Tensor]:
        """The tensors to store, in :meth:`Quantizer.compress`'s format."""
        users, items = self.encoded()
        return Quantizer(self.scheme).stored(users, items)

    def snapshot(self) -> dict[str, Tensor]:
        """A detached copy of the trainable state and the codes."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    @torch.no_grad()
    def reassign(self, items: Tensor) -> float:
        """Re-code ``items`` ``(I, D)`` (the fp32 table) under the current codebooks; returns the share changed."""
        codes = pq_encode(items, self.codebooks.detach().clone(), self.rotation, self.additive)
        changed = float((codes != self.codes).any(1).float().mean())
        self.codes.copy_(codes)
        return changed


def ranking_loss(
    logits: Tensor,
    positives: Tensor,
    teacher: Tensor | None,
    loss: str = "softmax+distill",
    distill_weight: float = 1.0,
) -> Tensor:
    """Listwise loss of a batch of users against the whole catalogue.

    Args:
        logits: ``(B, I)`` coded scores divided by the temperature.
        positives: ``(B, I)`` 0/1 training items of each user (every row has at least one).
        teacher: ``(B, I)`` fp32 teacher scores divided by the temperature (needed for the distill terms).
        loss: ``softmax``, ``distill`` or ``softmax+distill``.
        distill_weight: weight of the KL term in ``softmax+distill``.
    Returns:
        scalar: ``-1/|P_u| sum_{i in P_u} log softmax(logits_u)_i`` and/or ``KL(softmax(t_u) || softmax(logits_u))``,
        averaged over users.
    """
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    logp = logits.log_softmax(dim=1)  # (B, I)
    total = logits.new_zeros(())
    if loss in ("softmax", "softmax+distill"):
        total = total - ((logp * positives).sum(1) / positives.sum(1).clamp_min(1)).mean()
    if loss in ("distill", "softmax+distill"):
        if teacher is None:
            raise ConfigError(f"loss {loss!r} needs teacher scores")
        weight = 1.0 if loss == "distill" else distill_weight
        kl = F.kl_div(logp, teacher.log_softmax(dim=1), log_target=True, reduction="batchmean")
        total = total + weight * kl
    return total


class StageRanker:
    """Full ranking of one stage (``"val"`` or ``"test"``) with the served scorer; targets and mask built once.

    Calling it with ``(scheme, users, items)`` returns ``{"ndcg@10": ..., ...}`` for those encoded tables.
    """

    def __init__(self, data: InteractionData, stage: str, ks: Sequence[int] = (10,)) -> None:
        self.targets: sp.csr_matrix = data.matrix(getattr(data, stage))
        self.mask: sp.csr_matrix = data.matrix(data.known_for(stage))
        self.ks = tuple(ks)

    def __call__(self, scheme: str, users: Encoded, items: Encoded) -> dict[str, float]:
        q = Quantizer(scheme)
        return evaluate_full_ranking(
            lambda u: q.scores(users.rows(u), items), self.targets, self.mask, ks=self.ks, batch_size=256
        )


def evaluate_codes(
    scheme: str,
    users: Encoded,
    items: Encoded,
    data: InteractionData,
    stage: str = "test",
    ks: Sequence[int] = (10, 20),
) -> dict[str, float]:
    """Full ranking of ``stage`` with the served scorer (:meth:`Quantizer.scores`): exact users against coded items.

    Masking and targets as in training and :func:`~recsys_gnn.compress.evaluate.evaluate_quantized` (train, + val
    at test, masked). Returns ``{"ndcg@10": ..., "recall@10": ..., ...}``.
    """
    return StageRanker(data, stage, ks)(scheme, users, items)


@dataclass
class LearnResult:
    """One scheme's training: the kept (best-validation) tables and the per-epoch history."""

    scheme: str
    tables: CodedTables
    best_epoch: int
    best_val: float
    epochs: int
    seconds: float
    history: list[dict[str, float | None]] = field(default_factory=list)
    stopped: str = ""


def train_codes(
    scheme: str,
    user_emb: Tensor,
    item_emb: Tensor,
    data: InteractionData,
    similarity: str = "cosine",
    temperature: float = 0.1,
    settings: LearnSettings | None = None,
    init: Encoded | None = None,
) -> LearnResult:
    """Train the codebooks (and optionally users) of ``scheme`` to rank ``data.train``; select on ``data.val``.

    Args:
        scheme: a :data:`LEARNABLE` name.
        user_emb: ``(U, D)`` fp32 user table as scored (the run's saved table).
        item_emb: ``(I, D)`` fp32 item table as scored; the teacher and the post-hoc codes' source.
        data: the run's interactions (train positives, val targets, masks).
        similarity: the run's ``model.similarity``.
        temperature: softmax temperature of both scores (``settings.temperature`` overrides it).
        settings: training settings (default :class:`LearnSettings`).
        init: post-hoc codes to start from; default ``Quantizer(scheme).encode_items(item_emb)``.
    Returns:
        a :class:`LearnResult` whose ``tables`` hold the best-validation state (epoch 0 = post-hoc codes).
    """
    settings = settings or LearnSettings()
    temperature = settings.temperature or temperature
    if user_emb.shape != (data.n_users, item_emb.shape[1]) or item_emb.shape[0] != data.n_items:
        raise DataError(
            f"tables {tuple(user_emb.shape)} / {tuple(item_emb.shape)} do not match the data's "
            f"{data.n_users} users x {data.n_items} items"
        )
    user_emb, item_emb = user_emb.detach().float(), item_emb.detach().float()
    if init is None:
        init = Quantizer(scheme).encode_items(item_emb)
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = CodedTables(scheme, user_emb, init, similarity)
    groups: list[dict[str, Any]] = [{"params": [model.codebooks], "lr": settings.lr}]
    if settings.user_lr > 0:
        groups.append({"params": [model.users], "lr": settings.user_lr})
    else:
        model.users.requires_grad_(False)
    opt = torch.optim.Adam(groups)
    train = data.matrix(data.train)  # (U, I) csr
    train_users = torch.from_numpy(np.flatnonzero(np.diff(train.indptr) > 0))
    teacher_users = scored_rows(similarity, user_emb)  # (U, D), fixed
    teacher_items = scored_rows(similarity, item_emb)  # (I, D), fixed (saved tables are already as scored)
    val = StageRanker(data, "val")

    def validate() -> float:
        users, items = model.encoded()
        return val(scheme, users, items)[SELECT_METRIC]

    t0 = time.perf_counter()
    best_val, best_epoch, best_state = validate(), 0, model.snapshot()
    history = [{"epoch": 0, "loss": None, f"val/{SELECT_METRIC}": best_val, "seconds": 0.0}]
    log.info("%s epoch 0 (post-hoc codes): val/%s %.4f", scheme, SELECT_METRIC, best_val)
    stopped, epoch = "max_epochs", 0
    for epoch in range(1, settings.max_epochs + 1):
        if settings.reassign_every and epoch > 1 and (epoch - 1) % settings.reassign_every == 0:
            changed = model.reassign(item_emb)
            log.info("%s epoch %d: re-assigned codes (%.1f%% of items changed)", scheme, epoch, 100 * changed)
        total, steps = 0.0, 0
        for batch in train_users[torch.randperm(len(train_users), generator=gen)].split(settings.batch_size):
            positives = torch.from_numpy(train[batch.numpy()].toarray())  # (B, I)
            logits = model.scores(batch) / temperature  # (B, I)
            teacher = None
            if settings.loss != "softmax":
                with torch.no_grad():
                    teacher = teacher_users[batch] @ teacher_items.T / temperature  # (B, I)
            loss = ranking_loss(logits, positives, teacher, settings.loss, settings.distill_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + float(loss), steps + 1
        score = validate()
        seconds = time.perf_counter() - t0
        history.append(
            {"epoch": epoch, "loss": total / steps, f"val/{SELECT_METRIC}": score, "seconds": seconds}
        )
        if score > best_val:
            best_val, best_epoch, best_state = score, epoch, model.snapshot()
        log.info(
            "%s epoch %d: loss %.4f val/%s %.4f (best %.4f @ %d) %.1fs",
            scheme,
            epoch,
            total / steps,
            SELECT_METRIC,
            score,
            best_val,
            best_epoch,
            seconds,
        )
        if epoch - best_epoch >= settings.patience:
            stopped = f"patience ({settings.patience} epochs without a val/{SELECT_METRIC} gain)"
            break
        if seconds >= settings.max_seconds:
            stopped = f"max_seconds ({settings.max_seconds:.0f}s)"
            break
    model.load_state_dict(best_state)
    log.info(
        "%s: stopped by %s; kept epoch %d (val/%s %.4f)", scheme, stopped, best_epoch, SELECT_METRIC, best_val
    )
    return LearnResult(scheme, model, best_epoch, best_val, epoch, time.perf_counter() - t0, history, stopped)


def check_run(run: Path) -> Path:
    """``run`` if it is a finished training run folder (config and saved tables), else a one-line DataError."""
    run = Path(run)
    if not run.is_dir():
        raise DataError(f"run folder {run} does not exist")
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    if missing:
        raise DataError(
            f"{run} is not a finished training run: missing {', '.join(missing)} (expected config.yaml and tables/)"
        )
    return run


def _metrics(res: Mapping[str, float], stage: str) -> dict[str, float]:
    return {f"{stage}/{k}": float(v) for k, v in res.items() if k != "n_users"}


def learn_run(
    run: Path,
    schemes: Sequence[str],
    out: Path,
    settings: LearnSettings,
    posthoc_from: Path | None = None,
) -> dict[str, Any]:
    """Train learned codes for each scheme on a finished run's tables; write metrics, settings and codes to ``out``.

    Writes ``out/metrics.json`` (fp32, post-hoc and learned val/test metrics per scheme, best epoch, seconds,
    per-epoch history), ``out/settings.json`` (resolved settings, seed, run, similarity, temperature) and
    ``out/codes_<scheme>.safetensors`` (the learned tables in :meth:`Quantizer.compress`'s format; metadata
    ``quantization`` = the scheme), and the post-hoc starting point as ``out/posthoc_<scheme>.safetensors`` (same
    format). ``posthoc_from``: a folder holding ``posthoc_<scheme>.safetensors`` of this run, read instead of coding
    the items again (RQ coding is the slow step). Returns the metrics dict.
    """
    from omegaconf import OmegaConf

    from recsys_gnn.pipeline import load_data
    from recsys_gnn.tables import load_tables

    schemes = check_schemes(schemes)
    run = check_run(run)
    cfg = OmegaConf.load(run / "config.yaml")
    similarity = str(OmegaConf.select(cfg, "model.similarity", default="dot"))
    temperature = settings.temperature or OmegaConf.select(cfg, "module.temperature", default=None)
    if temperature is None:
        raise ConfigError(f"{run}/config.yaml has no module.temperature; pass --temperature")
    temperature = float(temperature)
    data = load_data(cfg)
    for name in ("val_history", "test_history"):
        hist = getattr(data, name, None)
        if hist is not None and len(hist):
            raise ConfigError(f"{run}: split has cold users ({name}); learned codes support warm users only")
    tables = load_tables(run / "tables")
    users, items = tables.user_emb.float(), tables.item_emb.float()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = {
        **asdict(settings),
        "temperature": temperature,
        "similarity": similarity,
        "run": str(run),
        "dataset": str(OmegaConf.select(cfg, "dataset.name", default="?")),
        "split_seed": OmegaConf.select(cfg, "seed", default=None),
        "schemes": schemes,
        "torch_threads": torch.get_num_threads(),
    }
    (out / "settings.json").write_text(json.dumps(resolved, indent=2))
    run_metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    fp32 = Quantizer("fp32")
    fu, fi = fp32.encode(users), fp32.encode(items)
    val, test = StageRanker(data, "val", (10, 20)), StageRanker(data, "test", (10, 20))
    result: dict[str, Any] = {
        "run": str(run),
        "fp32": {**_metrics(val("fp32", fu, fi), "val"), **_metrics(test("fp32", fu, fi), "test")},
        "run_fp32_test/ndcg@10": run_metrics.get("test/ndcg@10"),
        "schemes": {},
    }
    log.info("fp32: test/ndcg@10 %.4f", result["fp32"]["test/ndcg@10"])
    for scheme in schemes:
        t0 = time.perf_counter()
        init = _posthoc_codes(scheme, items, posthoc_from)
        init_seconds = time.perf_counter() - t0
        save_file(
            Quantizer(scheme).stored(fp32.encode(users), init),
            str(out / f"posthoc_{scheme}.safetensors"),
            metadata={"quantization": scheme, "learned": "no", "run": str(run)},
        )
        posthoc = {**_metrics(val(scheme, fp32.encode(users), init), "val")}
        posthoc.update(_metrics(test(scheme, fp32.encode(users), init), "test"))
        log.info(
            "%s post-hoc (%.0fs to code): test/ndcg@10 %.4f", scheme, init_seconds, posthoc["test/ndcg@10"]
        )
        res = train_codes(scheme, users, items, data, similarity, temperature, settings, init=init)
        lu, li = res.tables.encoded()
        learned = {**_metrics(val(scheme, lu, li), "val"), **_metrics(test(scheme, lu, li), "test")}
        stored = res.tables.stored()
        save_file(
            {k: v.contiguous() for k, v in stored.items()},
            str(out / f"codes_{scheme}.safetensors"),
            metadata={"quantization": scheme, "learned": "ranking", "run": str(run)},
        )
        fixed = sum(v.numel() * v.element_size() for k, v in stored.items() if k.startswith("pq_"))
        result["schemes"][scheme] = {
            "bytes_per_item": PQ_SUBSPACES[scheme],
            "fixed_item_bytes": fixed,
            "posthoc": posthoc,
            "learned": learned,
            "best_epoch": res.best_epoch,
            "epochs": res.epochs,
            "stopped": res.stopped,
            "code_seconds": init_seconds,
            "train_seconds": res.seconds,
            "history": res.history,
        }
        log.info(
            "%s learned: test/ndcg@10 %.4f (post-hoc %.4f), best epoch %d, %.0fs",
            scheme,
            learned["test/ndcg@10"],
            posthoc["test/ndcg@10"],
            res.best_epoch,
            res.seconds,
        )
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def _posthoc_codes(scheme: str, items: Tensor, folder: Path | None) -> Encoded:
    """The post-hoc codes of ``items`` ``(I, D)``: read from ``folder/posthoc_<scheme>.safetensors`` or learned."""
    if folder is None:
        return Quantizer(scheme).encode_items(items)
    path = Path(folder) / f"posthoc_{scheme}.safetensors"
    if not path.is_file():
        raise DataError(f"{path} is missing; run without --posthoc-from to code the items")
    _, coded = Quantizer(scheme).split(load_file(str(path)), dim=int(items.shape[1]))
    if len(coded) != len(items):
        raise DataError(f"{path} codes {len(coded)} items but the run has {len(items)}")
    log.info("%s: post-hoc codes read from %s", scheme, path)
    return coded


def build_parser() -> argparse.ArgumentParser:
    d = LearnSettings()
    p = argparse.ArgumentParser(
        prog="python -m recsys_gnn.compress.learned",
        description="Train PQ/RQ codebooks to rank (JPQ-style) on a finished run's tables.",
    )
    p.add_argument("--run", type=Path, required=True, help="finished run folder (config.yaml, tables/)")
    p.add_argument(
        "--schemes", default="rq8,pq8,rq4,pq4", help=f"comma-separated, from {', '.join(LEARNABLE)}"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/learned)")
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--distill-weight", type=float, default=d.distill_weight)
    p.add_argument("--lr", type=float, default=d.lr, help="codebook learning rate")
    p.add_argument("--user-lr", type=float, default=d.user_lr, help="user-table learning rate (0: frozen)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="users per step")
    p.add_argument("--max-epochs", type=int, default=d.max_epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--temperature", type=float, default=None, help="default: the run's module.temperature")
    p.add_argument("--reassign-every", type=int, default=d.reassign_every, help="epochs (0: codes fixed)")
    p.add_argument("--max-seconds", type=float, default=d.max_seconds, help="per scheme")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--posthoc-from", type=Path, default=None, help="folder with posthoc_<scheme>.safetensors of this run"
    )
    p.add_argument("--threads", type=int, default=1, help="torch (and faiss) threads")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 with a one-line message on bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
        settings = LearnSettings(
            loss=args.loss,
            distill_weight=args.distill_weight,
            lr=args.lr,
            user_lr=args.user_lr,
            batch_size=args.batch_size,
            max_epochs=args.max_epochs,
            patience=args.patience,
            temperature=args.temperature,
            reassign_every=args.reassign_every,
            max_seconds=args.max_seconds,
            seed=args.seed,
        )
        schemes = check_schemes(args.schemes.split(","))
        check_run(args.run)
        out = args.out if args.out is not None else args.run / "learned"
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "learned.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        learn_run(args.run, schemes, out, settings, posthoc_from=args.posthoc_from)
    except (ConfigError, DataError) as err:
        log.error("%s", err)
        return 1
    log.info("learned codes, metrics.json and settings.json written to %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
