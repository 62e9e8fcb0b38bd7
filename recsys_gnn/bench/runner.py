"""Runs every phase on every dataset and gathers the records, profiles, targets and machine facts."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from recsys_gnn.bench import load, phases
from recsys_gnn.bench.machine import machine_info, matmul_gflops
from recsys_gnn.bench.phases import BenchSettings, Record, make_record
from recsys_gnn.bench.recbole_ref import RecBoleLightGCN, recbole_available
from recsys_gnn.bench.report import TARGET_DATASET, evaluate_targets
from recsys_gnn.pipeline import git_commit

log = logging.getLogger(__name__)


def _error_record(dataset: str, phase: str, name: str, err: BaseException) -> Record:
    log.exception("%s / %s / %s failed: %s", dataset, phase, name, err)
    return {
        "dataset": dataset,
        "phase": phase,
        "name": name,
        "metric": "-",
        "error": f"{type(err).__name__}: {err}",
    }


def _serving_modules_present() -> bool:
    try:
        import recsys_gnn.export  # noqa: F401
        import recsys_gnn.serve.artifact  # noqa: F401
    except ImportError:
        return False
    return True


def run_bench(settings: BenchSettings, command: str | None = None) -> dict[str, Any]:
    """Run the benchmark and return everything the report needs (records, profiles, targets, machine, load)."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t_start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    gflops_start = matmul_gflops()
    records: list[Record] = []
    profiles: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    recbole: dict[str, Any] = {}
    notes: list[str] = []
    serving = _serving_modules_present()
    if not serving:
        notes.append(
            "recsys_gnn.export / recsys_gnn.serve.artifact absent: serving timed as torch.topk over the tables"
        )
    want_recbole = settings.recbole and recbole_available()
    if settings.recbole and not want_recbole:
        notes.append(
            "--recbole asked but recbole is not importable: no same-machine reference (see recbole_ref.py)"
        )
    dim = None

    for ds_index, dataset in enumerate(settings.datasets):
        log.info("== %s", dataset)
        try:
            data, recs = phases.bench_load(settings, dataset)
        except Exception as err:  # a dataset that cannot be read must not stop the others
            records.append(_error_record(dataset, "data", "load", err))
            continue
        records += recs
        try:
            records += phases.bench_encoding(settings, dataset, data)
        except Exception as err:
            records.append(_error_record(dataset, "encode", "encoder", err))

        reference = None
        if want_recbole and "lightgcn_id" in settings.models:
            try:
                reference = RecBoleLightGCN(
                    data, Path(settings.work_dir) / "recbole", name=dataset.replace("-", "_")
                )
            except Exception as err:
                records.append(_error_record(dataset, "reference", "RecBole LightGCN", err))

        trained: dict[str, phases.Trained] = {}
        for spec in settings.models:
            log.info("== %s: training %s", dataset, spec)
            try:
                ref = reference if spec == "lightgcn_id" else None
                recs, tr = phases.bench_training(settings, dataset, data, spec, reference=ref)
            except Exception as err:
                records.append(_error_record(dataset, "train", spec, err))
                continue
            records += recs
            trained[spec] = tr
            dim = dim or int(tr.cfg.compress.dim)

        for spec in settings.eval_models:
            if spec not in trained:
                continue
            log.info("== %s: evaluating %s", dataset, spec)
            try:
                recs, prof = phases.bench_eval(settings, dataset, trained[spec])
                records += recs
                profiles["eval"].append(prof)
            except Exception as err:
                records.append(_error_record(dataset, "eval", spec, err))

        serve_spec = settings.serve_model if settings.serve_model in trained else next(iter(trained), None)
        if serve_spec is not None:
            log.info("== %s: serving %s", dataset, serve_spec)
            try:
                if serving:
                    from recsys_gnn.serve.artifact import Artifact

                    folder = phases.export_trained(settings, dataset, trained[serve_spec], data)
                    records += phases.serve_timings(
                        settings, dataset, f"{serve_spec} artifact", lambda f=folder: Artifact.load(f)
                    )
                else:
                    with torch.no_grad():
                        users, items = trained[serve_spec].module.model.embed()
                    records += phases.direct_topk_timings(
                        settings, dataset, f"{serve_spec} tables", users, items
                    )
            except Exception as err:
                records.append(_error_record(dataset, "serve", serve_spec, err))

        if ds_index == 0:
            for spec in settings.profile_models:
                if spec in trained:
                    log.info("== %s: profiling training of %s", dataset, spec)
                    try:
                        prof = phases.profile_training(trained[spec])
                        prof["dataset"] = dataset
                        profiles["train"].append(prof)
                    except Exception as err:
                        records.append(_error_record(dataset, "profile", spec, err))

        if reference is not None and "lightgcn_id" in trained:
            log.info("== %s: RecBole LightGCN reference (interleaved with lightgcn_id)", dataset)
            try:
                records += phases.paired_eval(settings, dataset, trained["lightgcn_id"], reference)
                ref = reference.summary(settings.warmup_epochs)
                recbole[dataset] = ref
                records.append(
                    make_record(
                        dataset,
                        "reference",
                        "RecBole LightGCN",
                        "epoch (interleaved with lightgcn_id's epochs)",
                        ref["epoch_s"],
                        "s",
                        ndcg10=ref["ndcg10"],
                        epochs_trained=ref["epochs_trained"],
                        settings=ref["settings"],
                    )
                )
            except Exception as err:
                records.append(_error_record(dataset, "reference", "RecBole LightGCN", err))
        del trained, data
        gc.collect()

    if serving:
        from recsys_gnn.serve.artifact import Artifact

        dim = dim or 64
        try:
            folder = phases.synthetic_artifact(settings, dim)
            records += phases.serve_timings(
                settings,
                "synthetic",
                f"random {settings.synthetic_items}x{dim} artifact",
                lambda: Artifact.load(folder),
            )
            # catches its own failure: an error row, the other serving rows kept
            records += load.load_records(
                settings, "synthetic", f"random {settings.synthetic_items}x{dim} artifact", folder
            )
        except Exception as err:
            records.append(_error_record("synthetic", "serve", "synthetic", err))

    if serving and load.LoadSettings.from_bench(settings).requests:
        notes.append(load.NOTE)
    if TARGET_DATASET not in settings.datasets:
        notes.append(f"targets are stated on {TARGET_DATASET}, which this run did not include")
    notes.append(
        "training epochs: Lightning Trainer.fit with a callback timing on_train_epoch_start -> on_train_epoch_end, "
        "validation off; lightgcn_id runs with model.num_layers="
        f"{settings.lightgcn_layers} (the reference's 2 layers)"
    )
    result = {
        "command": command or " ".join(sys.argv),
        "commit": git_commit(),
        "started": started,
        "wall_s": time.perf_counter() - t_start,
        "machine": machine_info(),
        "load": {
            "start": load_start,
            "end": [round(x, 2) for x in os.getloadavg()],
            "gflops_start": gflops_start,
            "gflops_end": matmul_gflops(),
        },
        "settings": {
            k: (str(v) if not isinstance(v, int | float | bool | list | tuple | dict) else v)
            for k, v in vars(settings).items()
        },
        "records": records,
        "profiles": profiles,
        "recbole": recbole,
        "notes": notes,
    }
    result["targets"] = evaluate_targets(records, recbole, profiles)
    return result
