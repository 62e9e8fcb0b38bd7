"""Multi-process and accelerator support: exact distributed evaluation, a DDP strategy, an accelerator check.

Full-ranking metrics are sums over users, so a distributed evaluation is exact when every user is scored by
exactly one process and the sums are added up (``FullRankingMetric`` states reduce with ``sum``/``max``).
PyTorch's ``DistributedSampler`` pads the last shard with repeated users, which would count them twice;
:class:`UnpaddedDistributedSampler` does not. Training keeps the padded ``DistributedSampler``: DDP needs the
same number of steps on every process.

:class:`SafeDDPStrategy` (``conf/trainer/ddp*.yaml``) is Lightning's DDP with the fixes this framework's modules
need, and :func:`check_accelerator` turns a GPU request that cannot work (no CUDA; a CPU-only DGL for a GNN that
runs DGL on the GPU, :func:`dgl_device_settings`) into a clear error before any data is loaded.
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from torchmetrics import Metric

from recsys_gnn.data.errors import ConfigError

log = logging.getLogger(__name__)

CUDA_ACCELERATORS = ("gpu", "cuda")
DGL_CUDA_HINT = (
    "run `make install-cuda` (DGL's CUDA wheel, https://www.dgl.ai/pages/start.html), or use a CSR-backed GNN "
    "(backend=csr, e.g. gnn=lightgcn or gnn=gcn; model=lightgcn_id), or trainer=cpu"
)


class AcceleratorError(ConfigError):
    """The requested accelerator/strategy cannot run on this machine or with this installation."""


def shard_indices(n: int, rank: int, world_size: int) -> np.ndarray:
    """Indices of ``range(n)`` that process ``rank`` of ``world_size`` evaluates: strided, no padding.

    Every index belongs to exactly one shard; shard sizes differ by at most one.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size; got rank={rank}, world_size={world_size}")
    return np.arange(rank, n, world_size, dtype=np.int64)


class UnpaddedDistributedSampler(DistributedSampler):
    """Sequential evaluation sampler: each index goes to exactly one process, none is repeated.

    It subclasses ``DistributedSampler`` so that Lightning keeps it as is instead of injecting its own padded
    sampler. Every process must get at least one item: a process without batches would skip the evaluation
    epoch and leave the others waiting in the metric reduction.

    Args:
        dataset: a sized dataset.
        num_replicas: number of processes.
        rank: this process's rank.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        n = len(dataset)
        if n < num_replicas:
            raise ValueError(
                f"cannot shard {n} evaluation users over {num_replicas} processes without repeating some; "
                f"use fewer devices (trainer.devices) or trainer=cpu"
            )
        self.indices = shard_indices(n, rank, num_replicas)
        self.num_samples = len(self.indices)
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices.tolist())

    def __len__(self) -> int:
        return self.num_samples


def in_process_group() -> bool:
    """Whether this process belongs to an initialised ``torch.distributed`` process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def sampler_kwargs(trainer: Any | None) -> dict[str, int] | None:
    """``{"num_replicas", "rank"}`` inside a process of a multi-process ``trainer``, else None.

    Outside the worker processes (e.g. in the main process after a ``spawn`` run, where the process group is
    not initialised) loaders must cover every user, so this is None there too.
    """
    if trainer is None or not in_process_group():
        return None
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None)
    if not kwargs or int(kwargs.get("num_replicas", 1)) <= 1:
        return None
    return {"num_replicas": int(kwargs["num_replicas"]), "rank": int(kwargs["rank"])}


def ignore_sparse_buffers(module: nn.Module) -> list[str]:
    """Leave ``module``'s sparse buffers out of DDP's state broadcast (no backend can broadcast sparse tensors).

    Such buffers (e.g. the compressor's user-item averaging matrix) are built from the data on every process,
    identically, so nothing is lost. Returns the names added.
    """
    sparse = [name for name, buf in module.named_buffers() if buf.layout != torch.strided]
    if sparse:
        ignored = set(getattr(module, "_ddp_params_and_buffers_to_ignore", ())) | set(sparse)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, sorted(ignored))
    return sparse


def unshare_metric_states(module: nn.Module) -> int:
    """Give every torchmetrics state in ``module`` its own memory; returns how many states were copied.

    ``torch.multiprocessing`` spawn moves every tensor it pickles into shared memory. Lightning copies the
    parameters and buffers back out on CPU, but metric states are neither, so in-place updates (``n += b``) of
    one worker would show up in all of them and be counted twice by the reduction.
    """
    copied = 0
    for metric in module.modules():
        if not isinstance(metric, Metric):
            continue
        for name, value in metric.metric_state.items():
            if isinstance(value, torch.Tensor):
                setattr(metric, name, value.clone())
                copied += 1
            elif isinstance(value, list):
                setattr(metric, name, [v.clone() if isinstance(v, torch.Tensor) else v for v in value])
                copied += 1
    return copied


def restore_csv_headers(trainer: pl.Trainer) -> list[str]:
    """Let ``CSVLogger`` append to a ``metrics.csv`` that an earlier spawned worker wrote.

    Each ``trainer.fit/validate/test`` under ``start_method=spawn`` runs in fresh workers holding the logger as
    the main process left it, without the columns the previous workers wrote; Lightning would then rewrite
    the file with a header that lacks them and fail. The file's header is read back into the logger.
    Returns the columns restored.
    """
    restored: list[str] = []
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger) or logger._experiment is None:
            continue  # a new experiment starts its own file
        writer = logger._experiment
        path = Path(writer.metrics_file_path)
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        missing = [key for key in header if key not in writer.metrics_keys]
        writer.metrics_keys = sorted([*writer.metrics_keys, *missing])
        restored += missing
    return restored


class _EpochReturningLauncher(_MultiProcessingLauncher):
    """Lightning's spawn launcher that also sends the fit loop's epoch counter back to the main process.

    Without it ``trainer.current_epoch`` stays 0 in the main process after ``fit`` in spawned workers.
    """

    def get_extra_results(self, trainer: pl.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        extra["epoch_progress"] = trainer.fit_loop.epoch_progress.state_dict()  # nested dicts of ints
        return extra

    def update_main_process_results(self, trainer: pl.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        if "epoch_progress" in extra:
            trainer.fit_loop.epoch_progress.load_state_dict(extra["epoch_progress"])


class SafeDDPStrategy(DDPStrategy):
    """Lightning's ``DDPStrategy`` (any ``start_method``) made safe for this framework's modules and loggers.

    In every process it leaves sparse buffers out of the state broadcast (:func:`ignore_sparse_buffers`). With
    ``spawn``/``fork`` it also gives each worker private metric states (:func:`unshare_metric_states`), lets the
    CSV logger continue the file of an earlier ``fit``/``validate`` (:func:`restore_csv_headers`), and brings
    ``trainer.current_epoch`` back to the main process.
    """

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if self._start_method != "popen":
            self._launcher = _EpochReturningLauncher(self, start_method=self._start_method)

    def setup(self, trainer: pl.Trainer) -> None:
        assert self.model is not None
        ignore_sparse_buffers(self.model)
        if self._start_method != "popen":
            unshare_metric_states(self.model)
            if self.global_rank == 0:
                restore_csv_headers(trainer)
        super().setup(trainer)


def dgl_has_cuda() -> bool:
    """Whether the installed DGL library was built with CUDA (registers a CUDA device API)."""
    from dgl._ffi.function import list_global_func_names

    return bool({"device_api.cuda", "device_api.gpu"} & set(list_global_func_names()))


def _wants_cuda(accelerator: str) -> bool:
    if accelerator in CUDA_ACCELERATORS:
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def _launches_script_copies(trainer_cfg: Any) -> bool:
    """Whether Lightning would start copies of the command line (DDP with ``start_method=popen``, >1 device)."""
    strategy = trainer_cfg.get("strategy", "auto")
    if isinstance(strategy, str):
        popen = strategy == "ddp"
    else:
        target = str(strategy.get("_target_", ""))
        popen = target.endswith("DDPStrategy") and strategy.get("start_method", "popen") == "popen"
    if not popen:
        return False
    if "LOCAL_RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return False  # processes were started by torchrun / srun
    devices = str(trainer_cfg.get("devices", "auto"))
    if devices in ("1", "[0]"):
        return False
    if devices == "auto" and not _wants_cuda(str(trainer_cfg.get("accelerator", "auto")).lower()):
        return False  # "auto" devices on CPU is one process
    return True


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _option(group: str, target: str) -> str:
    """How a config group's choice reads on the command line: ``gnn=gat`` under Hydra, else by ``_target_``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None
    except Exception:  # no Hydra run (tests, scripts composing configs)
        choice = None
    return f"{group}={choice}" if choice else f"{group}._target_={target}"


def _backend(node: Any, cls: type) -> str | None:
    """The propagation ``backend`` a config node sets, else its class's default; None if it has none."""
    if "backend" in node:
        return str(node.backend)
    param = inspect.signature(cls).parameters.get("backend")
    return None if param is None or param.default is inspect.Parameter.empty else str(param.default)


def dgl_device_settings(cfg: DictConfig) -> list[str]:
    """The settings of ``cfg`` that run DGL kernels on the training device, so need a CUDA build of DGL there.

    Graph models (:class:`~recsys_gnn.models.base.GraphRecommender`) keep their DGL graph on the CPU when every
    GNN in them propagates with the torch CSR product (``backend=csr``, :mod:`recsys_gnn.graph.spmm`): DGL then
    only builds the graph, and the CSR structure is copied to the features' device. Listed are:

    * the compressors (``model=compressor``, ``distill``): a GNN without a ``backend`` argument (``gnn=gat``,
      ``gnn=gat_classic``, ``gnn=sage_classic``) or with ``gnn.backend=dgl``;
    * a graph model with its own ``backend`` argument (``model=lightgcn_id``): ``model.backend=dgl``;
    * any other graph model, except LightGCNId's subclasses (XSimGCL), which propagate with the CSR product.

    Models without a graph (mf, pop, lm_content, ...) need no DGL on the GPU. Returns e.g. ``["gnn=gat"]``;
    empty when the CPU-only DGL wheel is enough.
    """
    model = cfg.get("model")
    target = model.get("_target_") if isinstance(model, DictConfig) else None
    if not target:
        return []
    from hydra.utils import get_class

    from recsys_gnn.models.base import GraphRecommender
    from recsys_gnn.models.baselines.lightgcn_id import LightGCNId
    from recsys_gnn.models.compressor import GNNCompressor

    try:
        model_cls = get_class(str(target))
    except Exception:  # a bad _target_ fails later, at instantiation, with its own error
        return []
    if not issubclass(model_cls, GraphRecommender):
        return []
    if issubclass(model_cls, GNNCompressor):  # propagates with the `gnn` group
        gnn = cfg.get("gnn")
        if not isinstance(gnn, DictConfig) or not gnn.get("_target_"):
            return []  # no GNN configured: the model fails at build time with its own message
        try:
            gnn_cls = get_class(str(gnn._target_))
        except Exception:
            return []
        backend = _backend(gnn, gnn_cls)
        if backend is None:
            return [_option("gnn", str(gnn._target_))]
        return [] if backend == "csr" else [f"gnn.backend={backend}"]
    backend = _backend(model, model_cls)
    if backend is not None:
        return [] if backend == "csr" else [f"model.backend={backend}"]
    if issubclass(model_cls, LightGCNId):
        return []
    return [_option("model", str(target))]


def check_accelerator(cfg: DictConfig) -> None:
    """Fail early, with a fix, when ``cfg.trainer`` asks for hardware or a launch mode that cannot work here.

    * a CUDA accelerator (``gpu``/``cuda``, or ``auto`` on a machine with a GPU) without CUDA in torch;
    * a CUDA accelerator with the CPU-only DGL build for a configuration that runs DGL on the GPU
      (:func:`dgl_device_settings`: ``gnn=gat``, ``gnn=sage``, ``backend=dgl``); CSR-backed GNNs
      (GCN, LightGCN, LightGCN-on-ids with ``backend=csr``) train on the GPU with the CPU-only wheel;
    * ``strategy=ddp`` on several local devices inside a Hydra multirun (Lightning would re-run the whole sweep
      in each child process).

    Raises:
        AcceleratorError: with what is wrong and how to fix it.
    """
    trainer_cfg = cfg.get("trainer") or {}
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator in CUDA_ACCELERATORS and not torch.cuda.is_available():
        raise AcceleratorError(
            f"trainer.accelerator={accelerator} but CUDA is not available (torch {torch.__version__}, built for "
            f"CUDA {torch.version.cuda}; no usable GPU or driver found). Use trainer=cpu or trainer=ddp_cpu, or "
            "run on a machine with an NVIDIA GPU and driver."
        )
    needs = dgl_device_settings(cfg) if _wants_cuda(accelerator) else []
    if needs:
        where = f"trainer.accelerator={accelerator}" + (" (the GPU here)" if accelerator == "auto" else "")
        if not dgl_has_cuda():
            raise AcceleratorError(
                f"{where} with {', '.join(needs)} needs DGL on the GPU, but the installed DGL is CPU-only: "
                f"{DGL_CUDA_HINT}."
            )
        import dgl

        try:
            dgl.graph(([0], [1])).to("cuda")
        except Exception as err:  # a CUDA DGL that does not match the driver / torch build
            raise AcceleratorError(f"DGL cannot move a graph to CUDA ({err}): {DGL_CUDA_HINT}.") from err
    if _launches_script_copies(trainer_cfg) and _is_multirun():
        raise AcceleratorError(
            "strategy=ddp on several local devices does not work inside a Hydra multirun (-m): Lightning "
            "re-launches the command line, sweep included, in every process. Use hydra/launcher=slurm (one SLURM "
            "task per device), or start the processes with spawn for local sweeps (trainer=ddp "
            "trainer.strategy.start_method=spawn)."
        )
