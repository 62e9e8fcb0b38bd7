"""Sweeps and run tracking: `run.py -m` multiruns (failures isolated), the Optuna search, the SLURM launcher
config (composed and mapped to sbatch, never submitted), and the offline W&B run of a training job."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hydra
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from recsys_gnn.aggregate import find_jobs

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=["paths.output_dir=/tmp/unused", *overrides],
            return_hydra_config=True,
        )


def _run_py(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    """``python run.py ...`` in the repo, with the test's environment (tiny raw data, offline)."""
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- multirun -----------------------------------------------------------------------------------------------------
def test_multirun_jobs_get_own_folders_and_a_failure_does_not_stop_the_sweep(
    tiny_env: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "gnn=gcn,lightgcn",
        "gnn.num_layers=2,0",
        "debug=fast",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _run_py(args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {j.name: j for j in find_jobs(sweep)}
    assert sorted(jobs) == ["0", "1", "2", "3"]  # gcn/2, gcn/0, lightgcn/2, lightgcn/0
    for name, target in (("0", "gcn.GCN"), ("2", "lightgcn.LightGCN")):
        assert jobs[name].status == "ok" and jobs[name].config["gnn._target_"].endswith(target)
        metrics = json.loads((sweep / name / "metrics.json").read_text())
        assert 0.0 <= metrics["val/ndcg@10"] <= 1.0 and "test/ndcg@10" in metrics
        assert jobs[name].config["paths.output_dir"] == str(sweep / name)
    for name in ("1", "3"):
        assert jobs[name].status == "failed" and not (sweep / name / "metrics.json").exists()
        assert "num_layers" in (sweep / name / "FAILED").read_text()
        assert "gnn.num_layers=0" in jobs[name].overrides
    assert "job failed" in proc.stdout + proc.stderr + (sweep / "1" / "train.log").read_text()


# -- Optuna -------------------------------------------------------------------------------------------------------
def test_optuna_search_composes_with_a_space_valid_for_the_default_recipe() -> None:
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import CategoricalDistribution, IntUniformDistribution, LogUniformDistribution

    cfg = _compose(["hparams_search=compressor_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.monitor == "val/ndcg@10" and cfg.gnn._target_.endswith("LightGCN")
    assert 1 <= sweeper.n_trials <= 20
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed
    assert isinstance(space["optimizer.lr"], LogUniformDistribution)
    assert space["compress.dim"].choices == (16, 32, 64, 128)
    assert isinstance(space["gnn.num_layers"], IntUniformDistribution)
    assert (space["gnn.num_layers"].low, space["gnn.num_layers"].high) == (1, 3)
    assert 0.0 < space["module.temperature"].low < space["module.temperature"].high <= 1.0
    assert isinstance(space["data.num_negatives"], CategoricalDistribution)
    for key in space:  # every searched key exists in the default config, so each trial's overrides apply
        assert OmegaConf.select(cfg, key) is not None, key


@pytest.mark.slow
def test_optuna_two_trials_on_the_tiny_dataset(tiny_env: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    args = ["-m", "hparams_search=compressor_optuna", "debug=fast", "hydra.sweeper.n_trials=2"]
    proc = _run_py([*args, f"hydra.sweep.dir={sweep}"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = find_jobs(sweep)
    assert [j.status for j in jobs] == ["ok", "ok"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [json.loads((j.path / "metrics.json").read_text())["val/ndcg@10"] for j in jobs]
    assert best["best_value"] == pytest.approx(max(values))
    for job in jobs:
        assert job.config["compress.dim"] in (16, 32, 64, 128)
        assert 1 <= job.config["gnn.num_layers"] <= 3 and 1e-4 <= job.config["optimizer.lr"] <= 1e-2
        assert job.config["data.num_negatives"] in (64, 256)


# -- SLURM --------------------------------------------------------------------------------------------------------
SLURM_OVERRIDES = [
    "hydra/launcher=slurm",
    "hydra.mode=MULTIRUN",
    "trainer=ddp",
    "trainer.devices=4",
    "hydra.launcher.partition=gpu",
    "hydra.launcher.gpus_per_node=4",
    "hydra.launcher.tasks_per_node=4",
    "hydra.launcher.timeout_min=90",
    "hydra.launcher.setup=[module load cuda]",
]


def test_slurm_launcher_composes() -> None:
    cfg = _compose(SLURM_OVERRIDES)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 4, 4)
    assert launcher.timeout_min == 90 and launcher.nodes == 1 and launcher.mem_gb > 0
    assert str(launcher.submitit_folder).startswith(str(cfg.hydra.sweep.dir))
    default = _compose(["hydra/launcher=slurm"]).hydra.launcher
    assert (default.gpus_per_node, default.tasks_per_node, default.partition) == (1, 1, None)


def test_slurm_launcher_maps_the_sweep_to_sbatch_without_submitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    cfg = _compose([*SLURM_OVERRIDES, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    launcher = hydra.utils.instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    submitted: dict = {}

    def fake_map_array(executor, fn, *args):  # what would go to sbatch, captured instead
        submitted.update(executor=executor, overrides=list(args[0]))
        return [SimpleNamespace(results=lambda: [None]) for _ in args[0]]

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun on this machine
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    launcher.launch([["gnn=gcn"], ["gnn=gat"]], initial_job_idx=0)

    assert submitted["overrides"] == [["gnn=gcn"], ["gnn=gat"]]
    sbatch = submitted["executor"]._executor._make_submission_file_text("python run.py", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --time=90",
        "#SBATCH --nodes=1",
        "module load cuda",
    ):
        assert line in sbatch, line


# -- W&B ----------------------------------------------------------------------------------------------------------
def _wandb_records(path: Path) -> Iterator[bytes]:
    """Records of a ``.wandb`` transaction log: a LevelDB-style log of 32 KiB blocks after a 7-byte W&B header."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full
            yield chunk
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            yield pending + chunk


def _wandb_summary_and_history(
    path: Path, wait_s: float = 60.0, run_info: dict[str, Any] | None = None
) -> tuple[dict[str, float], set[str]]:
    """Summary values and history keys of a finished run (waits for wandb-core to write the ``exit`` record).

    ``run_info``, when given, receives the run record's ``group`` and ``tags``.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + wait_s
    while True:
        summary: dict[str, float] = {}
        history: set[str] = set()
        finished = False
        for raw in _wandb_records(path):
            record = pb.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run" and run_info is not None:
                run_info.update(group=record.run.run_group, tags=list(record.run.tags))
            if kind == "history":
                history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
            elif kind == "summary":
                for item in record.summary.update:
                    summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            finished |= kind == "exit"
        if finished or time.monotonic() > deadline:
            return summary, history
        time.sleep(0.5)  # wandb.finish() can return before the service has flushed the log


def test_wandb_offline_run_holds_the_metrics(tiny_env: Path, make_cfg) -> None:
    from recsys_gnn.pipeline import run_job

    cfg = make_cfg(
        ["logger=wandb", "compress.dim=16", "trainer.max_epochs=1", "data.batch_size=256"], fast=False
    )
    assert os.environ["WANDB_MODE"] == "offline"
    run_job(cfg)  # closes the W&B run
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    runs = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, "expected one offline W&B run inside the run folder"
    run_info: dict[str, Any] = {}
    summary, history = _wandb_summary_and_history(runs[0], run_info=run_info)
    assert run_info["group"] == "train"  # a single run: task_name
    for tag in (
        "domain=video",
        "dataset=ml-latest-small",
        "gnn=lightgcn",
        "graph=user_item",
        "compress=fp32-16d",
    ):
        assert tag in run_info["tags"], run_info["tags"]
    for key in ("val/ndcg@10", "test/ndcg@10"):
        assert key in history
        assert summary[key] == pytest.approx(metrics[key], rel=1e-6)
    assert "train/loss" in history
    # per-run plots and the compression report, in the run folder and in the W&B run
    assert (out / "plots" / "quality_vs_bytes.png").is_file() and (
        out / "plots" / "ndcg_by_subset.png"
    ).is_file()
    logged = set(summary) | history  # media and tables are logged as nested keys: <key>/path, <key>/_type...
    for key in ("plots/quality_vs_bytes", "plots/ndcg_by_subset", "compression/report"):
        assert f"{key}/_type" in logged, key
