"""The job skeleton every way of training shares.

check the config -> seed -> read and split the data -> run folder (config, run info, protocol) -> the
variant's model and data module -> loggers -> trainer -> fit -> validate and test the best checkpoint -> the
variant's extra outputs -> ``metrics.json``, ``metrics.md`` (the results table, logged last).

A :class:`Variant` supplies what differs between ways of training: its own checks, its protocol, what it
trains and on which batches, its callbacks, its extra outputs and its results table. This module knows no
variant: :mod:`recsys_gnn.pipeline` picks one from the config, and variants import this module, never each
other or the pipeline (``tests/test_job_skeleton.py`` keeps it so).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_gnn.config_check import check_config
from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.models.context import ModelContext

log = logging.getLogger(__name__)


# -- data and model ------------------------------------------------------------------------------------------


def load_data(cfg: DictConfig) -> InteractionData:
    """Resolve the raw files, read them and split them, as ``cfg.dataset`` / ``cfg.split`` / ``cfg.task`` say."""
    from recsys_gnn.data.preprocess import preprocess
    from recsys_gnn.data.sources import resolve

    ds = cfg.dataset
    domain = cfg.get("domain")
    if domain is not None and ds.get("domain") not in (None, domain):
        raise ConfigError(
            f"dataset={ds.name} belongs to domain {ds.domain!r} but domain={domain!r} was asked; "
            f"choose a {domain} dataset (see conf/dataset/) or domain={ds.domain}"
        )
    files = list(ds.files) if ds.get("files") is not None else None
    # source: null = a dataset made without raw files (dataset=synthetic); its reader is called with None.
    root = resolve(ds.source, files=files) if ds.get("source") is not None else None
    log.info("reading %s from %s", ds.name, root or "no files (generated)")
    raw = hydra.utils.instantiate(ds.reader)(root)
    splitter = hydra.utils.instantiate(cfg.split)
    data = preprocess(
        raw,
        splitter,
        implicit_threshold=ds.get("implicit_threshold"),
        kcore=int(ds.get("kcore") or 0),
        task=cfg.task,
    )
    data.protocol.setdefault("dataset", ds.name)
    log.info(
        "%s: %d users, %d items, train/val/test = %d/%d/%d",
        ds.name,
        data.n_users,
        data.n_items,
        len(data.train),
        len(data.val),
        len(data.test),
    )
    return data


def build_context(cfg: DictConfig, data: InteractionData) -> ModelContext:
    """The run-time inputs of a model: encoder, graph builder and GNN factory (all built lazily)."""
    encoder = hydra.utils.instantiate(cfg.encoder) if cfg.get("encoder") else None
    graph_builder = hydra.utils.instantiate(cfg.graph) if cfg.get("graph") else None
    gnn = hydra.utils.instantiate(cfg.gnn) if cfg.get("gnn") else None
    return ModelContext(data, encoder=encoder, graph_builder=graph_builder, gnn=gnn)


def build_model(cfg: DictConfig, data: InteractionData, context: ModelContext | None = None) -> Any:
    """Instantiate ``cfg.model`` with a :class:`ModelContext` (``build_context`` unless given)."""
    return hydra.utils.instantiate(cfg.model)(context=context or build_context(cfg, data))


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Every entry of a config group with a ``_target_`` (callbacks, loggers), instantiated in order."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


# -- loggers and W&B -----------------------------------------------------------------------------------------


def _choice(cfg: DictConfig, choices: dict[str, Any], group: str) -> str | None:
    """The option chosen for config ``group``: Hydra's runtime choice, else the module of its ``_target_``
    (``recsys_gnn.models.gnn.gat.GAT`` -> ``gat``, the naming rule config options follow)."""
    if choices.get(group):
        return str(choices[group])
    node = cfg.get(group)
    if isinstance(node, DictConfig) and node.get("_target_"):
        parts = str(node._target_).rsplit(".", 2)
        return parts[-2] if len(parts) > 1 else parts[0]
    return None


def wandb_identity(cfg: DictConfig) -> tuple[str, list[str]]:
    """W&B group and tags of a job.

    Group: ``wandb_group`` when set, else the sweep folder under ``-m`` (every job of a sweep together), else
    ``task_name``. Tags: the config's ``tags`` plus ``domain=``, ``dataset=``, ``model=``, ``graph=``, ``gnn=``,
    ``encoder=``, ``compress=`` (precision and dim) for the options this job used.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    choices: dict[str, Any] = {}
    group = cfg.get("wandb_group")
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        choices = dict(hc.runtime.choices)
        if group is None and hc.mode == RunMode.MULTIRUN:
            group = str(hc.sweep.dir)
    group = str(group or cfg.get("task_name") or "train")
    tags = [str(t) for t in cfg.get("tags") or []]
    if cfg.get("domain"):
        tags.append(f"domain={cfg.domain}")
    if cfg.get("dataset") and cfg.dataset.get("name"):
        tags.append(f"dataset={cfg.dataset.name}")
    for name in ("model", "graph", "gnn", "encoder"):
        option = _choice(cfg, choices, name)
        if option:
            tags.append(f"{name}={option}")
    if cfg.get("compress"):
        tags.append(f"compress={cfg.compress.get('name', 'fp32')}-{cfg.compress.get('dim')}d")
    return group, list(dict.fromkeys(tags))


def instantiate_loggers(cfg: DictConfig) -> list[Any]:
    """The ``logger`` group's loggers; a W&B logger gets :func:`wandb_identity`'s group and tags."""
    group_cfg = cfg.get("logger")
    if group_cfg and group_cfg.get("wandb") is not None:
        group, tags = wandb_identity(cfg)
        with open_dict(group_cfg.wandb):
            group_cfg.wandb.group = group
            group_cfg.wandb.tags = tags
    return instantiate_dict(group_cfg)


def configure_wandb_mode() -> None:
    """Default W&B to offline mode unless the user asked otherwise or is logged in, and to quiet console output
    (no run history/summary after our results; ``WANDB_QUIET=false`` brings it back)."""
    os.environ.setdefault("WANDB_QUIET", "true")
    if "WANDB_MODE" in os.environ:
        return
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in _read(Path.home() / ".netrc")
    if not logged_in:
        os.environ["WANDB_MODE"] = "offline"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def finish_wandb() -> None:
    """Close the W&B run of this process, if one is open."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


# -- the run folder ------------------------------------------------------------------------------------------


def git_commit() -> str | None:
    """The current git commit of the working directory, or None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_info(cfg: DictConfig, out: Path, protocol: dict[str, Any]) -> None:
    """Write the resolved config (``config.yaml``), seed/commit/versions (``run_info.json``) and ``protocol``
    (``protocol.json``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    info = {
        "seed": cfg.seed,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "run_info.json").write_text(json.dumps(info, indent=2))
    (out / "protocol.json").write_text(json.dumps(protocol, indent=2, default=str))


# -- the skeleton --------------------------------------------------------------------------------------------


@dataclass
class JobRun:
    """One job as its variant's hooks see it.

    Attributes:
        cfg: the composed config.
        out: the run folder (``cfg.paths.output_dir``).
        data: the split dataset.
        protocol: what ``protocol.json`` holds (the variant's :meth:`Variant.protocol`).
        main_process: False in the other processes of a multi-process launch (DDP, SLURM tasks): they write
            no files.
    """

    cfg: DictConfig
    out: Path
    data: InteractionData
    protocol: dict[str, Any]
    main_process: bool

    def record(self, **fields: Any) -> None:
        """Add ``fields`` to ``run_info.json`` (main process only)."""
        if not self.main_process:
            return
        path = self.out / "run_info.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}, indent=2))


@dataclass
class Setup:
    """What a variant trains: the Lightning module, its data module, and whether there is anything to fit
    (a fixed scorer is only validated and tested)."""

    module: pl.LightningModule
    datamodule: pl.LightningDataModule
    trainable: bool


class Variant(ABC):
    """One way to train inside the job; :func:`run` calls the hooks in the order listed here."""

    label: str = "results"  # heading of the results table in the log

    def check(self, cfg: DictConfig) -> None:  # noqa: B027 - optional hook
        """Checks of this variant, after :func:`~recsys_gnn.config_check.check_config` and before any data."""

    @abstractmethod
    def protocol(self, cfg: DictConfig, data: InteractionData) -> dict[str, Any]:
        """What ``protocol.json`` records: the data's protocol plus how this variant evaluates."""

    @abstractmethod
    def setup(self, run: JobRun) -> Setup:
        """Build the model, the data module and the Lightning module (``run.record`` adds to ``run_info``)."""

    def callbacks(self, cfg: DictConfig, setup: Setup) -> list[pl.Callback]:
        """Trainer callbacks when there is something to fit."""
        return []

    def trainer_kwargs(self, cfg: DictConfig) -> dict[str, Any]:
        """Arguments that override ``cfg.trainer``."""
        return {}

    def tests(self, cfg: DictConfig) -> bool:
        """Whether to run the test stage."""
        return bool(cfg.get("test", True))

    def monitor(self, cfg: DictConfig) -> str:
        """The metric the job returns (what sweeps optimise)."""
        return str(cfg.monitor)

    def finish(  # noqa: B027 - optional hook
        self, run: JobRun, setup: Setup, loggers: list[Any], metrics: dict[str, float]
    ) -> None:
        """Extra outputs after testing (main process only); may add entries to ``metrics``."""

    @abstractmethod
    def table(self, run: JobRun, metrics: dict[str, float]) -> str:
        """The Markdown results table (``metrics.md``, and the last thing logged)."""


def run(cfg: DictConfig, variant: Variant) -> float | None:
    """Run one job of ``variant`` and return ``variant.monitor(cfg)``'s value (None when it was not computed).

    The config is checked first (:func:`recsys_gnn.config_check.check_config`, then ``variant.check``), before
    any data is read. Writes ``config.yaml``, ``run_info.json``, ``protocol.json``, the variant's extra files,
    ``metrics.json``, ``metrics.md`` and ``best_checkpoint.txt`` (when a best checkpoint was tested) into
    ``cfg.paths.output_dir``.
    """
    check_config(cfg)
    variant.check(cfg)
    out = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    configure_wandb_mode()
    data = load_data(cfg)
    # Under multi-process launchers (DDP on GPUs, SLURM tasks) every process runs the job: one writes files.
    main_process = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    this = JobRun(cfg, out, data, variant.protocol(cfg, data), main_process)
    if main_process:
        write_run_info(cfg, out, this.protocol)
    setup = variant.setup(this)

    loggers = instantiate_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    callbacks = variant.callbacks(cfg, setup) if setup.trainable else []
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, **variant.trainer_kwargs(cfg)
    )

    results: dict[str, dict[str, float]] = {}
    ckpt = None
    if setup.trainable:
        t0 = time.perf_counter()
        trainer.fit(setup.module, datamodule=setup.datamodule)
        results["fit"] = {"fit/seconds": time.perf_counter() - t0, "fit/epochs": float(trainer.current_epoch)}
        if not cfg.trainer.get("fast_dev_run") and trainer.checkpoint_callback:
            ckpt = "best"
    val = trainer.validate(setup.module, datamodule=setup.datamodule, ckpt_path=ckpt, verbose=False)
    results["val"] = val[0] if val else {}
    if variant.tests(cfg):
        test = trainer.test(setup.module, datamodule=setup.datamodule, ckpt_path=ckpt, verbose=False)
        results["test"] = test[0] if test else {}

    metrics = {k: float(v) for stage in results.values() for k, v in stage.items()}
    monitor = variant.monitor(cfg)
    if not trainer.is_global_zero or not main_process:
        return metrics.get(monitor)
    variant.finish(this, setup, loggers, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    table = variant.table(this, metrics)
    (out / "metrics.md").write_text(table)
    if ckpt == "best" and trainer.checkpoint_callback is not None:
        (out / "best_checkpoint.txt").write_text(str(trainer.checkpoint_callback.best_model_path))
    finish_wandb()  # W&B prints when it closes: close it first, so that the results are the last lines
    log.info("%s (%s):\n%s", variant.label, out, table)
    return metrics.get(monitor)


def is_multirun() -> bool:
    """True inside a Hydra multirun (``-m``)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def guarded(cfg: DictConfig, job: Callable[[DictConfig], float | None]) -> float | None:
    """Run ``job(cfg)`` and always close the W&B run.

    In a multirun a failing job is logged (with its traceback, and a ``FAILED`` file in its folder) and
    returns None so that the other jobs go on; in a single run the error propagates (non-zero exit).
    With ``skip_finished=true`` a job whose folder already holds ``metrics.json`` is not run again (a rerun of a
    sweep resumes it) and returns the recorded ``cfg.monitor`` value.
    """
    done = Path(cfg.paths.output_dir) / "metrics.json"
    if cfg.get("skip_finished", False) and done.is_file():
        log.info("skip_finished: %s already holds metrics.json; not run again", done.parent)
        value = json.loads(done.read_text()).get(cfg.get("monitor"))
        return None if value is None else float(value)
    try:
        return job(cfg)
    except Exception as err:
        if not is_multirun():
            raise
        log.exception("job failed: %s", err)
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "FAILED").write_text(f"{type(err).__name__}: {err}\n")
        return None
    finally:
        finish_wandb()
