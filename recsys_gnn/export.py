"""Export a training run into a self-contained serving artifact (``python -m recsys_gnn.export <run>``).

The artifact (see :mod:`recsys_gnn.serve.artifact`) holds the run's user/item tables quantised as asked, the known
items, the id maps and the run's config/metrics/protocol; loading it needs nothing else (no raw data, no LM).
A compression report measured on the exported tables is written next to them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from recsys_gnn.compress.quantize import QUANTIZATIONS, Quantizer
from recsys_gnn.compress.report import compression_report, measure_latency, report_row, write_report
from recsys_gnn.serve.artifact import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    CHECKSUMMED,
    INDEX_FILE,
    KNOWN_FILE,
    METADATA_FILE,
    TABLES_FILE,
    Artifact,
    sha256,
)
from recsys_gnn.tables import Tables, load_tables

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.json", "protocol.json")
TABLES_DIR = "tables"
TRAIN_PARAMS_KEY = "trainable_params"  # looked up in run_info.json / metrics.json


def version() -> str:
    """The installed recsys_gnn version, or "unknown" when it is not installed."""
    try:
        return importlib.metadata.version("recsys-gnn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def find_run_folder(path: str | Path) -> Path:
    """The run folder at or above ``path`` (a run folder, or a checkpoint/file inside one).

    A run folder has ``tables/`` and ``config.yaml`` (written by :func:`recsys_gnn.pipeline.train`).
    """
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a run folder or a checkpoint inside one")
    for folder in [path, *path.parents] if path.is_dir() else list(path.parents):
        if (folder / TABLES_DIR / "embeddings.safetensors").is_file() and (folder / "config.yaml").is_file():
            return folder
    raise FileNotFoundError(
        f"no run folder (with {TABLES_DIR}/embeddings.safetensors and config.yaml) at or above {path}"
    )


def _check_checkpoint(path: Path, run: Path) -> None:
    """The run's tables come from its best checkpoint; refuse to export them under another checkpoint's name."""
    record = run / "best_checkpoint.txt"
    if not record.is_file():
        log.warning("%s has no best_checkpoint.txt; exporting the run's tables for %s", run, path)
        return
    best = Path(record.read_text().strip())
    same = best.exists() and best.resolve() == path.resolve()
    if not same and not best.exists():
        same = best.name == path.name  # the run folder was moved since training
    if not same:
        raise ValueError(
            f"{path} is not the run's best checkpoint ({best}); the tables in {run / TABLES_DIR} were computed "
            f"from the best checkpoint, so only that one (or the run folder) can be exported"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def read_run(run: Path) -> dict[str, Any]:
    """The run's config (dict), metrics, protocol and run info (None where the file is absent)."""
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    if missing:
        raise FileNotFoundError(f"run folder {run} lacks {missing}; was the training run completed?")
    return {
        "config": OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=False),
        "metrics": _read_json(run / "metrics.json"),
        "protocol": _read_json(run / "protocol.json"),
        "run_info": _read_json(run / "run_info.json") if (run / "run_info.json").is_file() else None,
    }


def train_params(run_data: dict[str, Any]) -> int | None:
    """Trainable parameter count recorded by the run (``trainable_params`` in run_info.json or metrics.json)."""
    for source in (run_data.get("run_info") or {}, run_data.get("metrics") or {}):
        if TRAIN_PARAMS_KEY in source:
            return int(source[TRAIN_PARAMS_KEY])
    return None


def default_quantization(config: dict[str, Any]) -> str:
    """``compress.quantize`` of the run's config, or fp32."""
    q = (config.get("compress") or {}).get("quantize")
    return str(q) if q else "fp32"


def write_artifact(
    tables: Tables,
    out: Path,
    quantization: str,
    metadata: dict[str, Any],
    stored: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``tables`` quantised by ``quantization`` and ``metadata`` as an artifact folder ``out``.

    ``stored``: tables already in :meth:`Quantizer.compress`'s format (codes trained for ranking by
    :mod:`recsys_gnn.compress.learned`), written as they are instead of quantising ``tables`` again; ``tables``
    still gives the ids, titles and known items."""
    if tables.user_emb.shape[1] != tables.item_emb.shape[1]:
        raise ValueError(
            f"user and item tables differ in width: {tables.user_emb.shape} vs {tables.item_emb.shape}"
        )
    out.mkdir(parents=True, exist_ok=True)
    quantizer = Quantizer(quantization)
    if stored is None:
        stored = quantizer.compress(tables)
    save_file(stored, str(out / TABLES_FILE), metadata={"quantization": quantization})
    save_file(
        {
            "indptr": torch.from_numpy(np.ascontiguousarray(tables.known_indptr, dtype=np.int64)),
            "indices": torch.from_numpy(np.ascontiguousarray(tables.known_indices, dtype=np.int64)),
        },
        str(out / KNOWN_FILE),
    )
    index = {"user_ids": tables.user_ids, "item_ids": tables.item_ids, "item_titles": tables.item_titles}
    (out / INDEX_FILE).write_text(json.dumps(index))
    meta = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "recsys_gnn_version": version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quantization": quantization,
        "dim": int(tables.item_emb.shape[1]),
        "n_users": int(tables.user_emb.shape[0]),
        "n_items": int(tables.item_emb.shape[0]),
        **metadata,
        "sha256": {name: sha256(out / name) for name in CHECKSUMMED},
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return out


def fp32_artifact(tables: Tables) -> Artifact:
    """An in-memory fp32 :class:`Artifact` over a run's tables (for comparison rows and agreement)."""
    fp32 = Quantizer("fp32")
    users, items = fp32.split(
        {"user_emb": tables.user_emb, "item_emb": tables.item_emb}, int(tables.item_emb.shape[1])
    )
    return Artifact(
        fp32,
        users,
        items,
        tables.known_indptr,
        tables.known_indices,
        tables.user_ids,
        tables.item_ids,
        tables.item_titles,
    )


def topk_agreement(a: Artifact, ref: Artifact, k: int = 10, batch_size: int = 1024) -> float:
    """Mean share of each user's top-``k`` (seen items excluded) that ``a`` and ``ref`` have in common."""
    k = min(k, a.n_items)
    total = 0.0
    for start in range(0, a.n_users, batch_size):
        rows = torch.arange(start, min(start + batch_size, a.n_users))
        tops = []
        for art in (a, ref):
            scores = art.score_users(rows)
            for j, r in enumerate(rows.tolist()):
                scores[j, torch.as_tensor(art.known_items(r), dtype=torch.long)] = float("-inf")
            tops.append(torch.topk(scores, k, dim=1).indices)
        for x, y in zip(tops[0].tolist(), tops[1].tolist(), strict=True):
            total += len(set(x) & set(y)) / k
    return total / a.n_users


def _serving_row(
    name: str,
    art: Artifact,
    run_data: dict[str, Any],
    params: int | None,
    latency_args: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    # the served path: the artifact's searcher (decoded fp32 cache, or faiss over PQ codes), built before timing
    searcher = art.searcher
    latency = measure_latency(
        None, art.n_users, search_fn=lambda u, k: searcher.search(art.users.rows(u), k), **latency_args
    )
    return report_row(
        name,
        serve_tensors=art.tensors(),
        n_items=art.n_items,
        train_params=params,
        lm_at_serving=False,
        metrics=run_data["metrics"],
        latency=latency,
        quantization=art.quantization,
        scoring=searcher.method,
        **extra,
    )


def read_codes(path: Path, tables: Tables) -> tuple[str, dict[str, torch.Tensor]]:
    """``(scheme, stored tables)`` of a learned-codes file (``codes_<scheme>.safetensors`` written by
    :mod:`recsys_gnn.compress.learned`), checked against the run's ``tables`` (same users, items and width)."""
    if not path.is_file():
        raise FileNotFoundError(f"--codes {path}: no such file")
    with safe_open(str(path), framework="pt") as f:
        scheme = (f.metadata() or {}).get("quantization")
    if scheme not in QUANTIZATIONS:
        raise ValueError(
            f"--codes {path}: metadata 'quantization' is {scheme!r}, expected one of {QUANTIZATIONS}"
        )
    stored = load_file(str(path))
    dim = int(tables.item_emb.shape[1])
    try:
        users, items = Quantizer(scheme).split(stored, dim)
    except (KeyError, ValueError) as err:
        raise ValueError(f"--codes {path}: not a {scheme} table of width {dim}: {err}") from err
    n_users, n_items = int(tables.user_emb.shape[0]), int(tables.item_emb.shape[0])
    if (len(users), len(items)) != (n_users, n_items):
        raise ValueError(
            f"--codes {path}: {len(users)} users x {len(items)} items, but the run has {n_users} x {n_items}"
        )
    return scheme, stored


def export_run(
    path: str | Path,
    out: str | Path | None = None,
    quantization: str | None = None,
    compare: Sequence[tuple[str, Path]] = (),
    teacher: str | None = None,
    name: str = "model",
    latency_args: dict[str, Any] | None = None,
    stage: str = "test",
    overwrite: bool = False,
    codes: str | Path | None = None,
) -> Path:
    """Export a run folder (or a checkpoint inside one) and write its compression report.

    Args:
        path: run folder or checkpoint path.
        out: artifact folder; default ``<run>/artifact_<quantization>``.
        quantization: fp32 | fp16 | int8 | binary | pq4 | pq8 | pq16 | opq4 | opq8 | opq16; default the run
            config's ``compress.quantize`` or fp32. PQ codebooks are learned here on the run's item table.
        compare: ``(name, run folder)`` entries (teacher, baselines) to report beside the model; their fp32
            tables are timed on this machine and their metrics read from their metrics.json.
        teacher: name (the model's or one of ``compare``) whose NDCG@10 is the 100% reference.
        name: the exported model's row name.
        latency_args: keyword arguments of :func:`measure_latency` (k, repeats, batch_size, ...).
        stage: metrics stage of the report ("test" or "val").
        overwrite: replace an existing artifact at ``out`` (a non-artifact folder is never deleted).
        codes: a ``codes_<scheme>.safetensors`` of :mod:`recsys_gnn.compress.learned` (codes trained for
            ranking, with their fine-tuned user table) served instead of quantising the run's tables; its scheme
            is the quantization (``quantization``, if given, must match).
    Returns:
        The artifact folder.
    """
    names = [name, *(n for n, _ in compare)]
    if len(set(names)) != len(names):
        raise ValueError(f"report row names must be distinct; got {names}")
    if teacher is not None and teacher not in names:
        raise ValueError(f"teacher {teacher!r} is none of the report rows {names}")
    path = Path(path)
    run = find_run_folder(path)
    if path.is_file() and path.suffix == ".ckpt":
        _check_checkpoint(path, run)
    run_data = read_run(run)
    others = []  # read before anything is written, so that a bad --compare leaves no half-made artifact
    for other_name, other_path in compare:
        other_run = find_run_folder(other_path)
        others.append((other_name, other_run, read_run(other_run), load_tables(other_run / TABLES_DIR)))
    tables = load_tables(run / TABLES_DIR)
    stored = None
    if codes is not None:
        scheme, stored = read_codes(Path(codes), tables)
        if quantization is not None and quantization != scheme:
            raise ValueError(f"--codes {codes} holds {scheme} codes but --quantize is {quantization}")
        quantization = scheme
    quantization = quantization or default_quantization(run_data["config"])
    Quantizer(quantization)  # validates the name before anything is written
    out = Path(out) if out is not None else run / f"artifact_{quantization}"
    if out.resolve() == (run / TABLES_DIR).resolve():
        raise ValueError(f"--out {out} would overwrite the run's own tables; choose another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty; pass --force (overwrite=True) to replace it"
            )
        if not (out / METADATA_FILE).is_file():
            raise FileExistsError(f"{out} exists and is not an artifact folder; refusing to replace it")
        shutil.rmtree(out)
    model_cfg = run_data["config"].get("model") or {}
    # item_bias: the tables' last column is an item bias (1 in user rows); serving's fold-in keeps it at 1
    meta = {"source_run": str(run), "item_bias": bool(model_cfg.get("item_bias", False)), **run_data}
    if codes is not None:
        meta["learned_codes"] = str(codes)
    write_artifact(tables, out, quantization, meta, stored=stored)
    log.info("exported %s (%s) to %s", run, quantization, out)

    latency_args = dict(latency_args or {})
    art = Artifact.load(out)
    params = train_params(run_data)
    notes = [
        f"{name}: serving = the exported {quantization} tables of {run}; the known-items CSR "
        f"({(out / KNOWN_FILE).stat().st_size:,} bytes on disk) is excluded from serve bytes.",
    ]
    if params is None:
        notes.append(
            f"{name}: the run recorded no '{TRAIN_PARAMS_KEY}' (run_info.json); train params unknown."
        )
    extra: dict[str, Any] = {}
    rows = []
    if quantization != "fp32":
        ref = fp32_artifact(tables)
        extra["top10_agreement_with_fp32"] = topk_agreement(art, ref, k=10)
        if codes is not None:
            notes.append(
                f"{name}: codes trained for ranking from {codes} (users fine-tuned with them); their own "
                "NDCG/Recall are in that folder's metrics.json."
            )
        notes.append(
            f"{name}: NDCG/Recall are those of the trained fp32 tables (metrics.json); "
            f"top10_agreement_with_fp32 = {extra['top10_agreement_with_fp32']:.3f} is the mean share of each "
            "user's top-10 that the quantised tables keep."
        )
    rows.append(_serving_row(name, art, run_data, params, latency_args, stage=stage, **extra))
    for other_name, other_run, other_data, other_tables in others:
        other = fp32_artifact(other_tables)
        rows.append(
            _serving_row(other_name, other, other_data, train_params(other_data), latency_args, stage=stage)
        )
        notes.append(f"{other_name}: serving = the fp32 tables of {other_run} (no LM runs per request).")
    report = compression_report(rows, teacher=teacher, notes=notes)
    write_report(report, out)
    return out


def _compare_arg(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--compare expects NAME=RUN_FOLDER; got {text!r}")
    return name, Path(folder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recsys_gnn.export",
        description="Export a training run's tables as a self-contained serving artifact with a compression report.",
    )
    p.add_argument("run", type=Path, help="run folder (or a checkpoint inside one)")
    p.add_argument(
        "--out", type=Path, default=None, help="artifact folder (default: <run>/artifact_<quantize>)"
    )
    p.add_argument(
        "--quantize", choices=QUANTIZATIONS, default=None, help="default: the run's compress.quantize or fp32"
    )
    p.add_argument("--name", default="model", help="the model's name in the report")
    p.add_argument(
        "--compare",
        type=_compare_arg,
        action="append",
        default=[],
        metavar="NAME=RUN",
        help="run to report beside",
    )
    p.add_argument("--teacher", default=None, help="row name whose NDCG@10 counts as 100%%")
    p.add_argument("--stage", choices=("test", "val"), default="test", help="metrics stage to report")
    p.add_argument("--repeats", type=int, default=200, help="timed one-user requests")
    p.add_argument("--batch-size", type=int, default=256, help="users per batch for throughput")
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads for the timings (default: torch's)"
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    p.add_argument(
        "--codes",
        type=Path,
        default=None,
        help="serve learned codes (codes_<scheme>.safetensors of python -m recsys_gnn.compress.learned) "
        "instead of quantising the run's tables",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 with a clear message on bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            log.error("--threads must be >= 1; got %d", args.threads)
            return 1
        torch.set_num_threads(args.threads)
    try:
        folder = export_run(
            args.run,
            out=args.out,
            quantization=args.quantize,
            compare=args.compare,
            teacher=args.teacher,
            name=args.name,
            latency_args={"repeats": args.repeats, "batch_size": args.batch_size},
            stage=args.stage,
            overwrite=args.force,
            codes=args.codes,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        log.error("%s", err)
        return 1
    log.info("artifact written to %s (report: %s)", folder, folder / "compression.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
