"""The compression report: what each model needs to train and to serve, how fast it serves, how good it is.

Sizes are counted from the actual tensors (``numel * element_size``); quality is read from each run's
``metrics.json`` (never recomputed here); latency is measured on this machine's CPU.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

REPORT_JSON = "compression.json"
REPORT_MD = "compression.md"


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes held by ``tensors``: ``sum(t.numel() * t.element_size())``."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


def tensor_params(tensors: Iterable[Tensor]) -> int:
    """Number of stored values in ``tensors``: ``sum(t.numel())``."""
    return int(sum(t.numel() for t in tensors))


def measure_latency(
    score_fn: Callable[[Tensor], Tensor] | None,
    n_users: int,
    k: int = 10,
    repeats: int = 200,
    batch_size: int = 256,
    *,
    warmup: int = 10,
    batch_repeats: int | None = None,
    seed: int = 0,
    search_fn: Callable[[Tensor, int], Any] | None = None,
) -> dict[str, Any]:
    """Time top-``k`` retrieval on CPU: single-user latency and batched throughput.

    Each timed request is ``torch.topk(score_fn(users), k)`` for random stored users, or ``search_fn(users, k)``
    when given (a path that finds the top-k without materialising every score, e.g. a faiss index).

    Args:
        score_fn: user indices ``(B,)`` int64 -> scores ``(B, I)``; may be None when ``search_fn`` is given.
        n_users: users to draw from (indices ``0..n_users-1``).
        k: list length.
        repeats: timed one-user requests (after ``warmup`` untimed ones) for p50/p99.
        batch_size: users per batch for the throughput measurement.
        warmup: untimed requests before each measurement.
        batch_repeats: timed batches; default ``max(3, repeats // 20)``.
        seed: seed of the random user draws.
        search_fn: ``(user indices (B,), k) -> top-k`` timed instead of ``score_fn`` + ``torch.topk``.
    Returns:
        ``p50_ms``, ``p99_ms``, ``mean_ms`` (one user), ``throughput_users_per_s`` (batches), the settings and
        ``torch_threads``.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1; got {n_users}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be >= 1; got {repeats} and {batch_size}")
    batch_repeats = max(3, repeats // 20) if batch_repeats is None else batch_repeats
    if batch_repeats < 1:
        raise ValueError(f"batch_repeats must be >= 1; got {batch_repeats}")
    gen = torch.Generator().manual_seed(seed)
    single = torch.randint(0, n_users, (warmup + repeats, 1), generator=gen)
    batch_size = min(batch_size, n_users)
    batches = [torch.randperm(n_users, generator=gen)[:batch_size] for _ in range(warmup + batch_repeats)]

    if score_fn is None and search_fn is None:
        raise ValueError("measure_latency needs a score_fn or a search_fn")

    def request(users: Tensor) -> None:
        if search_fn is not None:
            search_fn(users, k)
            return
        scores = score_fn(users)
        if scores.dim() != 2 or scores.shape[0] != len(users):
            raise ValueError(f"score_fn must return ({len(users)}, I) scores; got {tuple(scores.shape)}")
        if k > scores.shape[1]:
            raise ValueError(f"k={k} exceeds the {scores.shape[1]} items scored")
        torch.topk(scores, k, dim=1)

    times = []
    with torch.inference_mode():
        for i, users in enumerate(single):
            t0 = time.perf_counter()
            request(users)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        for users in batches[:warmup]:
            request(users)
        t0 = time.perf_counter()
        for users in batches[warmup:]:
            request(users)
        batch_seconds = time.perf_counter() - t0
    ms = np.asarray(times) * 1000.0
    return {
        "k": k,
        "repeats": repeats,
        "warmup": warmup,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "batch_size": batch_size,
        "batches": batch_repeats,
        "throughput_users_per_s": float(batch_size * batch_repeats / batch_seconds),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
    }


def report_row(
    name: str,
    *,
    serve_tensors: Mapping[str, Tensor],
    n_items: int,
    train_params: int | None,
    lm_at_serving: bool,
    metrics: Mapping[str, float] | None = None,
    latency: Mapping[str, Any] | None = None,
    item_keys: Iterable[str] | None = None,
    stage: str = "test",
    **extra: Any,
) -> dict[str, Any]:
    """One row of the report, with sizes counted from ``serve_tensors``.

    Args:
        name: row label.
        serve_tensors: every tensor needed to answer a request (tables, scales, and the weights of any network
            that runs per request, e.g. an LM's parameters).
        n_items: catalogue size I, for ``bytes_per_item``.
        train_params: parameters trained, computed by the caller as ``sum(p.numel())``; None if unknown.
        lm_at_serving: whether a language model runs at serving time.
        metrics: the run's ``metrics.json`` (keys ``{stage}/ndcg@10`` and ``{stage}/recall@10`` are read).
        latency: output of :func:`measure_latency`.
        item_keys: which of ``serve_tensors`` hold the item side (default: names starting with "item").
        stage: metrics stage to report ("test" or "val").
        extra: more columns copied into the row (e.g. ``quantization``).
    Returns:
        The row as a dict.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1; got {n_items}")
    keys = [k for k in serve_tensors if k.startswith("item")] if item_keys is None else list(item_keys)
    missing = [k for k in keys if k not in serve_tensors]
    if missing:
        raise ValueError(f"item_keys {missing} are not among the serving tensors {sorted(serve_tensors)}")
    metrics = metrics or {}
    row: dict[str, Any] = {
        "name": name,
        **extra,
        "train_params": None if train_params is None else int(train_params),
        "serve_params": tensor_params(serve_tensors.values()),
        "serve_bytes": tensor_bytes(serve_tensors.values()),
        "serve_tensors": {
            key: {
                "shape": list(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "bytes": tensor_bytes([t]),
            }
            for key, t in serve_tensors.items()
        },
        "n_items": int(n_items),
        "bytes_per_item": tensor_bytes(serve_tensors[k] for k in keys) / n_items,
        "lm_at_serving": bool(lm_at_serving),
        "latency": dict(latency) if latency is not None else None,
        "metrics_stage": stage,
        "ndcg@10": _metric(metrics, stage, "ndcg@10"),
        "recall@10": _metric(metrics, stage, "recall@10"),
    }
    return row


def _metric(metrics: Mapping[str, float], stage: str, name: str) -> float | None:
    value = metrics.get(f"{stage}/{name}")
    return None if value is None else float(value)


def compression_report(
    rows: Iterable[Mapping[str, Any]], teacher: str | None = None, notes: Iterable[str] = ()
) -> dict[str, Any]:
    """Assemble rows (from :func:`report_row`) into a report and add the share of the teacher's NDCG@10 kept.

    Args:
        rows: the model first, then compared entries (teacher, baselines).
        teacher: name of the row whose NDCG@10 is the reference; None for no retained column.
        notes: free-text lines (how things were measured) shown under the table.
    Returns:
        ``{"rows": [...], "teacher": ..., "notes": [...], "created": ...}``; each row gains ``ndcg_retained``.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("a compression report needs at least one row")
    names = [r["name"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate row names in the compression report: {dupes}")
    notes = list(notes)
    ref = None
    if teacher is not None:
        if teacher not in names:
            raise ValueError(f"teacher {teacher!r} is not one of the report rows {names}")
        ref = rows[names.index(teacher)]["ndcg@10"]
        if not ref:
            notes.append(f"teacher {teacher!r} has no positive NDCG@10 in its metrics; no retained fraction")
            ref = None
    for r in rows:
        r["ndcg_retained"] = None if ref is None or r["ndcg@10"] is None else r["ndcg@10"] / ref
    return {
        "teacher": teacher,
        "rows": rows,
        "notes": notes,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
    }


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table plus notes."""
    head = (
        "| model | train params | serve params | serve bytes | bytes/item | LM at serving | top-10 p50 ms "
        "| top-10 p99 ms | users/s (batch) | NDCG@10 | Recall@10 | NDCG@10 retained |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in report["rows"]:
        lat = r.get("latency") or {}
        label = r["name"] + (f" ({r['quantization']})" if r.get("quantization") else "")
        cells = [
            label,
            _fmt(r["train_params"], ","),
            _fmt(r["serve_params"], ","),
            _fmt(r["serve_bytes"], ","),
            _fmt(r["bytes_per_item"], ".1f"),
            _fmt(r["lm_at_serving"]),
            _fmt(lat.get("p50_ms"), ".3f"),
            _fmt(lat.get("p99_ms"), ".3f"),
            _fmt(lat.get("throughput_users_per_s"), ",.0f"),
            _fmt(r["ndcg@10"], ".4f"),
            _fmt(r["recall@10"], ".4f"),
            _fmt(r["ndcg_retained"], ".1%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if report.get("teacher"):
        lines.append(f"Teacher (100% NDCG@10): {report['teacher']}.")
    timed = [r["latency"] for r in report["rows"] if r.get("latency")]
    if timed:
        t = timed[0]
        lines.append(
            f"Latency: top-{t['k']} for one user, p50/p99 over {t['repeats']} requests after {t['warmup']} "
            f"warm-up; throughput over {t['batches']} batches of {t['batch_size']} users; "
            f"{t['device']} ({t.get('cpu', '')}), torch threads = {t['torch_threads']}."
        )
    stages = sorted({r["metrics_stage"] for r in report["rows"]})
    lines.append(f"Quality: {', '.join(stages)} metrics read from each run's metrics.json (not recomputed).")
    lines += [f"{note}" for note in report.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``compression.json`` and ``compression.md`` into ``folder`` (created); returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / REPORT_JSON, folder / REPORT_MD
    json_path.write_text(json.dumps(report, indent=2))
    md_path.write_text(format_report(report))
    log.info("compression report written to %s", md_path)
    return json_path, md_path
