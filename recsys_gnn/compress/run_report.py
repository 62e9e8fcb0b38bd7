"""The compression report every training run writes: the model's tables at each precision beside the LM teacher."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys_gnn.compress.quantize import Encoded, Quantizer
from recsys_gnn.compress.report import compression_report, measure_latency, report_row, write_report
from recsys_gnn.compress.search import Searcher, resolve_method
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.ranking import evaluate_full_ranking
from recsys_gnn.models.distill import teacher_tables

log = logging.getLogger(__name__)

TEACHER = "lm_content"


def _stage_view(metrics: Mapping[str, float], prefix: str, stage: str = "test") -> dict[str, float]:
    """Metrics under ``{prefix}/...`` renamed to ``{stage}/...`` (what :func:`report_row` reads)."""
    return {f"{stage}/{k.split('/', 1)[1]}": v for k, v in metrics.items() if k.startswith(f"{prefix}/")}


def quantized_scorer(q: Quantizer, users: Encoded, items: Encoded):
    """``u (B,) -> (B, I)`` reference scores of encoded tables, as ranked for a quantisation scheme."""
    return lambda u: q.scores(users.rows(u), items)


def quantized_search(q: Quantizer, users: Encoded, items: Encoded, method: str = "auto"):
    """``(u (B,), k) -> top-k`` by the served scoring path (:class:`~recsys_gnn.compress.search.Searcher`), as
    timed for a quantisation scheme; the searcher is built once, outside the timed requests."""
    searcher = Searcher(q, items, method)
    return lambda u, k: searcher.search(users.rows(u), k)


def run_compression_report(
    out: Path,
    name: str,
    user_emb: Tensor,
    item_emb: Tensor,
    data: InteractionData,
    metrics: Mapping[str, float],
    train_params: int,
    schemes: Sequence[str] = ("fp16", "int8", "binary"),
    context: Any | None = None,
    ks: Sequence[int] = (5, 10, 20),
    repeats: int = 200,
) -> dict[str, Any]:
    """Write ``compression.json``/``compression.md`` into ``out`` and return the report.

    Rows: the model's fp32 tables and each quantised variant (their test metrics come from ``metrics``:
    ``test/...`` and ``test_{scheme}/...``), and, when ``context`` has an encoder, the frozen-LM teacher
    (``lm_content``) evaluated here with the same full-ranking protocol: once as precomputed 384-d tables, once
    counting the LM's weights that must run at serving time to embed new items. Sizes are counted from the
    actual tensors; latencies are measured on this machine's CPU.

    Args:
        out: run folder.
        name: the model's row name.
        user_emb, item_emb: ``(U, D)``, ``(I, D)`` trained tables (cold users already folded in).
        data: the dataset (for the teacher's evaluation).
        metrics: the run's metrics.
        train_params: parameters the model trained.
        schemes: quantisations evaluated in ``metrics``.
        context: :class:`~recsys_gnn.models.context.ModelContext` (for the teacher), or None.
        ks: cut-offs.
        repeats: timed one-user requests per row.
    """
    rows = []
    n_items = data.n_items
    for scheme in ("fp32", *[s for s in schemes if s != "fp32"]):
        prefix = "test" if scheme == "fp32" else f"test_{scheme}"
        if scheme != "fp32" and f"{prefix}/ndcg@10" not in metrics:
            continue
        q = Quantizer(scheme)
        users, items = q.encode(user_emb.cpu()), q.encode_items(item_emb.cpu())
        tensors = q.stored(users, items)
        rows.append(
            report_row(
                f"{name} {scheme}",
                serve_tensors=tensors,
                n_items=n_items,
                train_params=train_params,
                lm_at_serving=False,
                metrics=_stage_view(metrics, prefix),
                latency=measure_latency(
                    None, data.n_users, repeats=repeats, search_fn=quantized_search(q, users, items)
                ),
                quantization=scheme,
                scoring=resolve_method(scheme),
                dim=int(user_emb.shape[1]),
            )
        )
    teacher = None
    if context is not None and getattr(context, "encoder", None) is not None:
        teacher = TEACHER
        t_users, t_items = teacher_tables(context, TEACHER)
        if data.test_history is not None and len(data.test_history):
            hist = torch.as_tensor(data.test_history, dtype=torch.long)
            summed = torch.zeros_like(t_users).index_add_(0, hist[:, 0], t_items[hist[:, 1]])
            has = torch.bincount(hist[:, 0], minlength=data.n_users) > 0
            t_users[has] = F.normalize(summed[has], dim=-1)
        res = evaluate_full_ranking(
            lambda u: t_users[u] @ t_items.T,
            data.matrix(data.test),
            data.matrix(data.known_for("test")),
            ks=ks,
        )
        t_metrics = {f"test/{k}": v for k, v in res.items()}
        tables = {"user_emb": t_users, "item_emb": t_items}
        common = {
            "n_items": n_items,
            "train_params": 0,
            "metrics": t_metrics,
            "latency": measure_latency(lambda u: t_users[u] @ t_items.T, data.n_users, repeats=repeats),
            "quantization": "fp32",
            "dim": int(t_items.shape[1]),
        }
        rows.append(report_row(TEACHER, serve_tensors=tables, lm_at_serving=False, **common))
        encoder_weights = context.encoder.weights() if hasattr(context.encoder, "weights") else None
        if encoder_weights:
            lm = {f"lm.{k}": v for k, v in encoder_weights.items()}
            rows.append(
                report_row(
                    f"{TEACHER} + LM for new items",
                    serve_tensors={**tables, **lm},
                    item_keys=["item_emb"],
                    lm_at_serving=True,
                    **common,
                )
            )
    notes = [
        "sizes: bytes of the tensors needed to answer a request (tables + scales + any per-request network)",
        "latency: top-10 over all items for one random user (p50/p99 after warm-up) and batched throughput, CPU, "
        "by the served scoring path (column scoring: decoded = table decoded once to fp32 at load, one BLAS "
        "product + topk, RAM = fp32 size; faiss = faiss IndexPQ/IndexBinaryFlat over the codes; reference = the "
        "quantised product per request)",
        "PQ rows: the user table stays fp32 (asymmetric distance); bytes/item counts the item codes only, the "
        "shared codebooks (256 x D floats, + the D x D OPQ rotation) are in serve bytes",
        "quality: full-ranking test metrics; quantised rows are ranked with their quantised scores",
    ]
    report = compression_report(rows, teacher=teacher, notes=notes)
    write_report(report, out)
    log.info("compression report written to %s", out / "compression.md")
    return report


def report_scalars(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat numeric columns of a report for experiment loggers: ``compression/{row}/{column}``."""
    out: dict[str, float] = {}
    for row in report["rows"]:
        key = row["name"].replace(" ", "_")
        for col in ("serve_bytes", "bytes_per_item", "train_params", "ndcg@10", "recall@10", "ndcg_retained"):
            if row.get(col) is not None:
                out[f"compression/{key}/{col}"] = float(row[col])
        if row.get("latency"):
            for col in ("p50_ms", "p99_ms", "throughput_users_per_s"):
                out[f"compression/{key}/{col}"] = float(row["latency"][col])
    return out
