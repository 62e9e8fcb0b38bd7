"""The straight-line training job: seed -> data -> model -> trainer -> fit -> test the best checkpoint."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_gnn.compress.evaluate import evaluate_quantized
from recsys_gnn.compress.run_report import report_scalars, run_compression_report
from recsys_gnn.config_check import check_config
from recsys_gnn.data.datamodule import RecDataModule
from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.distributed import check_accelerator
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.module import RecModule
from recsys_gnn.plots import log_to_wandb, write_run_plots
from recsys_gnn.report import format_metrics_table
from recsys_gnn.tables import save_tables

log = logging.getLogger(__name__)


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


def _instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


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
    return _instantiate_dict(group_cfg)


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


def save_run_info(cfg: DictConfig, out: Path, data: InteractionData) -> None:
    """Write the resolved config, seed, commit and protocol next to the results."""
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
    protocol = {**data.protocol, "drops": data.drops, "ks": list(cfg.module.ks), "evaluation": PROTOCOL_TEXT}
    (out / "protocol.json").write_text(json.dumps(protocol, indent=2, default=str))


PROTOCOL_TEXT = (
    "full ranking over all items of the catalogue; each user's training items (and, at test, validation "
    "items) masked; users with no target items skipped; metrics averaged over users"
)


def train(cfg: DictConfig) -> float | None:
    """Run one training job and return the value of ``cfg.monitor`` (for sweeps).

    ``task=rating`` runs explicit rating prediction instead (:func:`recsys_gnn.rating.run.run_rating`, which
    returns ``val/rmse``). The config is checked first (:func:`recsys_gnn.config_check.check_config`), before
    any data is read.
    """
    check_config(cfg)
    if cfg.task == "rating":
        from recsys_gnn.rating.run import run_rating  # rating.run imports this module

        return run_rating(cfg)
    out = Path(cfg.paths.output_dir)
    check_accelerator(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    configure_wandb_mode()
    data = load_data(cfg)
    # Under multi-process launchers (DDP on GPUs, SLURM tasks) every process runs train(): one writes files.
    main_process = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    if main_process:
        save_run_info(cfg, out, data)

    context = build_context(cfg, data)
    model = build_model(cfg, data, context)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info_path = out / "run_info.json"
    if main_process:
        info_path.write_text(
            json.dumps({**json.loads(info_path.read_text()), "trainable_params": n_train}, indent=2)
        )
    datamodule = RecDataModule(data, seed=cfg.seed, **cfg.data)
    optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = RecModule(model, data, optimizer=optimizer, scheduler=scheduler, **cfg.module)

    loggers = instantiate_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainable = bool(getattr(model, "trainable", True))
    callbacks = _instantiate_dict(cfg.get("callbacks")) if trainable else []
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)

    results: dict[str, dict[str, float]] = {}
    fast = bool(cfg.trainer.get("fast_dev_run"))
    ckpt = None
    if trainable:
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        results["fit"] = {"fit/seconds": time.perf_counter() - t0, "fit/epochs": float(trainer.current_epoch)}
        ckpt = None if fast else "best"
        if ckpt and not trainer.checkpoint_callback:
            ckpt = None
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    results["val"] = val[0] if val else {}
    if cfg.get("test", True):
        test = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        results["test"] = test[0] if test else {}

    metrics = {k: float(v) for stage in results.values() for k, v in stage.items()}
    if not trainer.is_global_zero or not main_process:
        return metrics.get(cfg.monitor)
    with torch.no_grad():
        module.model.eval()
        user_emb, item_emb = module.model.embed()
    save_tables(out / "tables", user_emb, item_emb, data)
    schemes = list(cfg.compress.get("evaluate") or [])
    tested = cfg.get("test", True) and not fast
    report = None
    if tested:
        # The test-time tables: cold users represented from their given history, as in RecModule's test.
        u_test, i_test = module.model.fold_in((user_emb, item_emb), module.histories["test"], data.n_users)
    if schemes and tested:
        metrics.update(evaluate_quantized(u_test, i_test, data, schemes=schemes, ks=list(cfg.module.ks)))
    if cfg.compress.get("report", True) and tested:
        report = run_compression_report(
            out,
            cfg.model._target_.rsplit(".", 1)[-1],
            u_test,
            i_test,
            data,
            metrics,
            train_params=n_train,
            schemes=schemes,
            context=context,
            ks=list(cfg.module.ks),
        )
        for lg in loggers:
            lg.log_metrics(report_scalars(report))
    if tested:
        plots = write_run_plots(out, metrics, report)
        log_to_wandb(loggers, plots, report)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    table = format_metrics_table(metrics, protocol=data.protocol, ks=list(cfg.module.ks))
    (out / "metrics.md").write_text(table)
    if ckpt == "best" and trainer.checkpoint_callback is not None:
        (out / "best_checkpoint.txt").write_text(str(trainer.checkpoint_callback.best_model_path))
    finish_wandb()  # W&B prints when it closes: close it first, so that the results are the last lines
    log.info("results (%s):\n%s", out, table)
    return metrics.get(cfg.monitor)


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def run_job(cfg: DictConfig) -> float | None:
    """Run :func:`train` and always close the W&B run.

    In a multirun a failing job is logged (with its traceback, and a ``FAILED`` file in its folder) and returns
    None so that the other jobs go on; in a single run the error propagates (non-zero exit).
    """
    try:
        return train(cfg)
    except Exception as err:
        if not _is_multirun():
            raise
        log.exception("job failed: %s", err)
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "FAILED").write_text(f"{type(err).__name__}: {err}\n")
        return None
    finally:
        finish_wandb()


def finish_wandb() -> None:
    """Close the W&B run of this process, if one is open."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
