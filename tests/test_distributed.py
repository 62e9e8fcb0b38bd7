"""Distributed evaluation is exact (unpadded user shards + summed metric states), DDP configs, accelerator checks."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DistributedSampler

from recsys_gnn import distributed
from recsys_gnn.data.datamodule import RecDataModule
from recsys_gnn.distributed import (
    AcceleratorError,
    SafeDDPStrategy,
    UnpaddedDistributedSampler,
    check_accelerator,
    ignore_sparse_buffers,
    restore_csv_headers,
    shard_indices,
    unshare_metric_states,
)
from recsys_gnn.eval.ranking import FullRankingMetric
from recsys_gnn.models.module import RecModule
from recsys_gnn.pipeline import build_model, load_data

log = logging.getLogger(__name__)


@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (5, 5), (1, 1)])
def test_shards_partition_without_padding(n: int, world: int) -> None:
    shards = [shard_indices(n, r, world) for r in range(world)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    samplers = [list(UnpaddedDistributedSampler(range(n), num_replicas=world, rank=r)) for r in range(world)]
    assert samplers == [s.tolist() for s in shards]
    assert [len(UnpaddedDistributedSampler(range(n), world, r)) for r in range(world)] == sizes


def test_unpadded_sampler_rejects_more_processes_than_users() -> None:
    with pytest.raises(ValueError, match="cannot shard 2 evaluation users over 3 processes"):
        UnpaddedDistributedSampler(range(2), num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="rank"):
        shard_indices(4, rank=2, world_size=2)


def _fake_trainer(world: int, rank: int) -> SimpleNamespace:
    return SimpleNamespace(distributed_sampler_kwargs={"num_replicas": world, "rank": rank})


@pytest.fixture
def in_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend to be a worker of an initialised process group (the rank comes from the fake trainer)."""
    monkeypatch.setattr(distributed, "in_process_group", lambda: True)


def test_loaders_cover_everything_outside_a_process_group(tiny_env: Path, make_cfg) -> None:
    """E.g. the main process after a spawned DDP run: its trainer is multi-process, but no group exists here."""
    data = load_data(make_cfg())
    dm = RecDataModule(data)
    dm.trainer = _fake_trainer(2, 0)
    assert dm.val_dataloader().sampler.__class__.__name__ == "SequentialSampler"
    assert dm.train_dataloader().sampler.__class__.__name__ == "RandomSampler"


def _rank_loop(dm: RecDataModule, stage: str, scores: torch.Tensor, ks: tuple[int, ...]) -> FullRankingMetric:
    """One process's evaluation loop: its shard of users, its own metric states."""
    metric = FullRankingMetric(ks, num_items=scores.shape[1])
    loader = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
    for batch in loader:
        metric.update(scores[batch["user"]], batch["targets"], batch["mask"])
    return metric


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")  # merged states only
@pytest.mark.parametrize("world", [2, 4, 7])
@pytest.mark.parametrize("stage", ["val", "test"])
def test_sharded_eval_with_summed_states_equals_one_process(
    tiny_env: Path, make_cfg, in_process_group: None, world: int, stage: str
) -> None:
    """Users sharded by the datamodule across ranks, states merged with their dist_reduce_fx == one process."""
    cfg = make_cfg(["data.eval_batch_size=4"])
    data = load_data(cfg)
    dm = RecDataModule(data, seed=cfg.seed, **cfg.data)
    scores = torch.randn(data.n_users, data.n_items, generator=torch.Generator().manual_seed(0))
    ks = (1, 5, 10)
    single = _rank_loop(dm, stage, scores, ks).compute()

    merged = FullRankingMetric(ks, num_items=data.n_items)
    seen: list[int] = []
    for rank in range(world):
        dm.trainer = _fake_trainer(world, rank)
        loader = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
        assert isinstance(loader.sampler, UnpaddedDistributedSampler)
        seen += [int(u) for batch in loader for u in batch["user"]]
        merged.merge_state(_rank_loop(dm, stage, scores, ks))
    dm.trainer = None
    assert len(seen) == len(set(seen)) == int(single["n_users"]), "users missing or evaluated twice"
    out = merged.compute()
    assert out.keys() == single.keys()
    for key, value in single.items():
        assert float(out[key]) == pytest.approx(float(value), abs=1e-6), key


def test_train_loader_shards_pairs_with_equal_steps(tiny_env: Path, make_cfg, in_process_group: None) -> None:
    cfg = make_cfg(["data.batch_size=16"])
    data = load_data(cfg)
    dm = RecDataModule(data, seed=cfg.seed, **cfg.data)
    n = len(dm.train_dataloader().dataset)
    indices, steps = [], []
    for rank in range(2):
        dm.trainer = _fake_trainer(2, rank)
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.shuffle
        indices.append(list(loader.sampler))
        steps.append(len(loader))
        batch = next(iter(loader))
        # the default recipe shares its negatives within a batch: neg (N,) with a validity mask (B, N)
        assert set(batch) == {"user", "pos", "neg", "neg_valid", "weight"}
    assert steps[0] == steps[1]
    assert set(indices[0]) | set(indices[1]) == set(range(n))
    dm.trainer = None
    assert dm.train_dataloader().sampler.__class__.__name__ == "RandomSampler"


def test_ignore_sparse_buffers_and_unshare_metric_states() -> None:
    module = torch.nn.Module()
    module.register_buffer("dense", torch.ones(2))
    module.register_buffer("adj", torch.eye(3).to_sparse())
    module.metric = FullRankingMetric((5,), num_items=4)
    assert ignore_sparse_buffers(module) == ["adj"]
    assert module._ddp_params_and_buffers_to_ignore == ["adj"]

    before = module.metric.n_users
    assert unshare_metric_states(module) == len(module.metric.metric_state)
    assert module.metric.n_users is not before and int(module.metric.n_users) == int(before)


def test_restore_csv_headers(tmp_path: Path) -> None:
    logger = pl.loggers.CSVLogger(tmp_path, name="csv", version="")
    writer = logger.experiment
    Path(writer.metrics_file_path).write_text("epoch,step,train/loss\n0,0,1.5\n")
    assert restore_csv_headers(SimpleNamespace(loggers=[logger])) == ["epoch", "step", "train/loss"]
    logger.log_metrics({"val/ndcg@10": 0.25}, step=1)
    logger.save()  # Lightning would fail here without the restored header
    with open(writer.metrics_file_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["train/loss"] == "1.5" and rows[1]["val/ndcg@10"] == "0.25"


def _trainer_cfg(make_cfg, option: str):
    return make_cfg([f"trainer={option}"], fast=False).trainer


def test_ddp_cpu_config_builds_a_two_process_gloo_trainer(make_cfg) -> None:
    tcfg = _trainer_cfg(make_cfg, "ddp_cpu")
    trainer = hydra.utils.instantiate(tcfg, logger=False, callbacks=[])
    assert isinstance(trainer.strategy, SafeDDPStrategy)
    assert trainer.strategy._start_method == "spawn"
    assert type(trainer.strategy.launcher).__name__ == "_EpochReturningLauncher"
    assert trainer.num_devices == 2 and trainer.world_size == 2
    assert trainer.strategy._get_process_group_backend() == "gloo"


def test_ddp_and_gpu_configs_compose(make_cfg) -> None:
    ddp = _trainer_cfg(make_cfg, "ddp")
    assert ddp.strategy._target_ == "recsys_gnn.distributed.SafeDDPStrategy"
    assert ddp.strategy.start_method == "popen" and ddp.accelerator == "auto" and ddp.devices == "auto"
    gpu = _trainer_cfg(make_cfg, "gpu")
    assert gpu.accelerator == "gpu" and gpu.devices == 1


def _cfg(trainer: dict) -> DictConfig:
    return OmegaConf.create({"trainer": trainer})


def test_check_accelerator_cpu_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_accelerator(_cfg({"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}))
    check_accelerator(_cfg({"accelerator": "auto"}))


def test_check_accelerator_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AcceleratorError, match="CUDA is not available.*trainer=cpu"):
        check_accelerator(_cfg({"accelerator": "gpu", "devices": 1}))


GAT = {"_target_": "recsys_gnn.models.gnn.gat.GAT", "_partial_": True}
GCN = {"_target_": "recsys_gnn.models.gnn.gcn.GCN", "_partial_": True}
LIGHTGCN = {"_target_": "recsys_gnn.models.gnn.lightgcn.LightGCN", "_partial_": True}
COMPRESSOR = {"_target_": "recsys_gnn.models.compressor.GNNCompressor", "_partial_": True}
DISTILL = {"_target_": "recsys_gnn.models.distill.DistilledCompressor", "_partial_": True}
LIGHTGCN_ID = {"_target_": "recsys_gnn.models.baselines.lightgcn_id.LightGCNId", "_partial_": True}
MF = {"_target_": "recsys_gnn.models.baselines.mf.MatrixFactorization", "_partial_": True}


def _run_cfg(model: dict, gnn: dict | None = None, accelerator: str = "gpu") -> DictConfig:
    return OmegaConf.create(
        {"trainer": {"accelerator": accelerator, "devices": 1}, "model": model, "gnn": gnn}
    )


@pytest.mark.parametrize(
    ("model", "gnn", "expected"),
    [
        (COMPRESSOR, LIGHTGCN, []),  # backend defaults to csr
        (COMPRESSOR, {**LIGHTGCN, "backend": "csr"}, []),
        (COMPRESSOR, {**GCN, "backend": "csr"}, []),
        (DISTILL, GCN, []),
        (COMPRESSOR, {**LIGHTGCN, "backend": "dgl"}, ["gnn.backend=dgl"]),
        (COMPRESSOR, {**GCN, "backend": "dgl"}, ["gnn.backend=dgl"]),
        (COMPRESSOR, GAT, [f"gnn._target_={GAT['_target_']}"]),  # no backend argument: DGL kernels
        (DISTILL, GAT, [f"gnn._target_={GAT['_target_']}"]),
        (DISTILL, {**LIGHTGCN, "backend": "dgl"}, ["gnn.backend=dgl"]),
        ({**LIGHTGCN_ID, "backend": "csr"}, GAT, []),  # LightGCN-id ignores the gnn group
        (LIGHTGCN_ID, None, []),
        ({**LIGHTGCN_ID, "backend": "dgl"}, LIGHTGCN, ["model.backend=dgl"]),
        (MF, GAT, []),  # no graph at all
        ({"_target_": "recsys_gnn.models.baselines.pop.Popularity"}, None, []),
    ],
)
def test_dgl_device_settings(model: dict, gnn: dict | None, expected: list[str]) -> None:
    assert distributed.dgl_device_settings(_run_cfg(model, gnn)) == expected


def test_dgl_device_settings_of_the_shipped_configs(make_cfg) -> None:
    assert distributed.dgl_device_settings(make_cfg([])) == []  # default: compressor + LightGCN (csr)
    assert distributed.dgl_device_settings(make_cfg(["gnn=gcn"])) == []
    assert distributed.dgl_device_settings(make_cfg(["model=lightgcn_id"])) == []
    assert distributed.dgl_device_settings(make_cfg(["gnn=gat"])) == [f"gnn._target_={GAT['_target_']}"]
    assert distributed.dgl_device_settings(make_cfg(["gnn.backend=dgl"])) == ["gnn.backend=dgl"]
    assert distributed.dgl_device_settings(make_cfg(["model=lightgcn_id", "model.backend=dgl"])) == [
        "model.backend=dgl"
    ]
    assert distributed.dgl_device_settings(make_cfg(["model=mf", "gnn=gat"])) == []


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "auto"])
def test_check_accelerator_cpu_only_dgl(monkeypatch: pytest.MonkeyPatch, accelerator: str) -> None:
    """With the CPU-only DGL wheel, GPU runs that need DGL on the GPU stop with a one-line fix; CSR ones go."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed, "dgl_has_cuda", lambda: False)
    with pytest.raises(
        AcceleratorError,
        match=r"with gnn\._target_=\S+GAT needs DGL on the GPU.*CPU-only: run `make install-cuda`",
    ) as err:
        check_accelerator(_run_cfg(COMPRESSOR, GAT, accelerator))
    assert "\n" not in str(err.value) and "gnn=lightgcn" in str(err.value)
    with pytest.raises(AcceleratorError, match="gnn.backend=dgl"):
        check_accelerator(_run_cfg(COMPRESSOR, {**LIGHTGCN, "backend": "dgl"}, accelerator))
    check_accelerator(_run_cfg(COMPRESSOR, LIGHTGCN, accelerator))  # CSR propagation: no DGL on the GPU
    check_accelerator(_run_cfg({**LIGHTGCN_ID, "backend": "csr"}, None, accelerator))
    check_accelerator(_run_cfg(MF, GAT, accelerator))
    check_accelerator(_cfg({"accelerator": accelerator, "devices": 1}))  # no model: nothing needs DGL


def test_check_accelerator_cuda_dgl_must_reach_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA DGL that cannot move a graph (driver / build mismatch) is caught when DGL runs on the GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed, "dgl_has_cuda", lambda: True)
    with pytest.raises(AcceleratorError, match="DGL cannot move a graph to CUDA"):
        check_accelerator(_run_cfg(COMPRESSOR, GAT))  # this machine's DGL is CPU-only, so .to("cuda") fails
    check_accelerator(_run_cfg(COMPRESSOR, GCN))  # never touched for CSR runs


def test_graph_stays_on_cpu_for_csr_gnns(tiny_env: Path, make_cfg) -> None:
    """GraphRecommender moves its graph only when a GNN runs DGL kernels (CSR runs keep it on the CPU)."""
    cfg = make_cfg(["compress.dim=8"])
    data = load_data(cfg)
    csr = build_model(cfg, data)
    assert not csr.graph_follows_device()
    dgl_backend = build_model(make_cfg(["compress.dim=8", "gnn.backend=dgl"]), data)
    assert dgl_backend.graph_follows_device()
    assert build_model(make_cfg(["compress.dim=8", "gnn=gat"]), data).graph_follows_device()
    lightgcn_id = build_model(make_cfg(["model=lightgcn_id", "compress.dim=8"]), data)
    assert not lightgcn_id.graph_follows_device()
    csr.to(torch.float64)  # a dtype move still keeps the graph where it is
    assert csr.graph.device == torch.device("cpu")


def test_check_accelerator_rejects_popen_ddp_in_a_local_multirun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(distributed, "_is_multirun", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    popen = {"_target_": "recsys_gnn.distributed.SafeDDPStrategy", "start_method": "popen"}
    with pytest.raises(AcceleratorError, match="hydra/launcher=slurm"):
        check_accelerator(_cfg({"accelerator": "cpu", "devices": 2, "strategy": popen}))
    with pytest.raises(AcceleratorError, match="multirun"):
        check_accelerator(_cfg({"accelerator": "cpu", "devices": 2, "strategy": "ddp"}))
    spawn = {**popen, "start_method": "spawn"}
    check_accelerator(_cfg({"accelerator": "cpu", "devices": 2, "strategy": spawn}))
    check_accelerator(_cfg({"accelerator": "cpu", "devices": "auto", "strategy": popen}))  # one CPU process
    monkeypatch.setenv("SLURM_NTASKS", "2")  # srun started the processes
    check_accelerator(_cfg({"accelerator": "cpu", "devices": 2, "strategy": popen}))


@pytest.mark.slow
def test_two_process_ddp_eval_equals_single_process(tiny_env: Path, make_cfg) -> None:
    """Real DDP (2 CPU processes, gloo): validate and test the same weights in both modes; all metrics agree."""
    cfg = make_cfg(["split=cold_users", "gnn=gcn", "compress.dim=16", "data.eval_batch_size=5"], fast=False)
    pl.seed_everything(cfg.seed)
    data = load_data(cfg)
    module = RecModule(build_model(cfg, data), data, **cfg.module)
    dm = RecDataModule(data, seed=cfg.seed, **cfg.data)
    quiet = {"logger": False, "enable_progress_bar": False, "enable_checkpointing": False}

    single = pl.Trainer(accelerator="cpu", devices=1, **quiet)
    expected = {**single.validate(module, datamodule=dm, verbose=False)[0]}
    expected.update(single.test(module, datamodule=dm, verbose=False)[0])

    ddp_cfg = make_cfg(["trainer=ddp_cpu"], fast=False).trainer
    ddp = hydra.utils.instantiate(ddp_cfg, callbacks=[], **quiet)
    t0 = time.perf_counter()
    got = {**ddp.validate(module, datamodule=dm, verbose=False)[0]}
    got.update(ddp.test(module, datamodule=dm, verbose=False)[0])
    log.info("2-process validate + test: %.1fs", time.perf_counter() - t0)

    assert "test_cold_users/ndcg@10" in expected and expected["val/n_users"] >= 2
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
def test_pipeline_trains_with_ddp_cpu_and_reports_exact_metrics(tiny_env: Path, make_cfg) -> None:
    """`trainer=ddp_cpu` end to end (fit, best checkpoint, val, test); the reported val metrics equal a
    single-process validation of the saved best checkpoint."""
    from recsys_gnn.pipeline import train

    overrides = ["trainer=ddp_cpu", "trainer.max_epochs=2", "compress.dim=16", "data.batch_size=64"]
    cfg = make_cfg(overrides, fast=False)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    best = Path((out / "best_checkpoint.txt").read_text())
    assert best.is_file()
    assert metrics["fit/epochs"] == 2  # the epoch counter came back from the spawned workers

    data = load_data(cfg)
    module = RecModule(build_model(cfg, data), data, **cfg.module)
    module.load_state_dict(torch.load(best, map_location="cpu")["state_dict"])
    single = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    expected = single.validate(
        module, datamodule=RecDataModule(data, seed=cfg.seed, **cfg.data), verbose=False
    )[0]
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert "test/ndcg@10" in metrics


def test_dgl_device_settings_names_the_hydra_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a Hydra run the error names the option as typed (gnn=gat), not the class path."""
    from hydra.core.hydra_config import HydraConfig

    choices = SimpleNamespace(runtime=SimpleNamespace(choices={"gnn": "gat"}))
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: choices))
    assert distributed.dgl_device_settings(_run_cfg(COMPRESSOR, GAT)) == ["gnn=gat"]
