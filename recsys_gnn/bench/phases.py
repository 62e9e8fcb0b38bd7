"""The benchmark's phases on one dataset: text encoding, training epochs, full-ranking evaluation, serving.

Everything runs through the repo's own pieces: configs composed from ``conf/`` with Hydra, data from
:func:`recsys_gnn.pipeline.load_data`, models from :func:`recsys_gnn.pipeline.build_model`, batches from
:class:`~recsys_gnn.data.datamodule.RecDataModule`, training and evaluation through
:class:`~recsys_gnn.models.module.RecModule` on a Lightning ``Trainer``, serving through
:mod:`recsys_gnn.export` and :class:`recsys_gnn.serve.artifact.Artifact`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import hydra
import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from recsys_gnn.bench.machine import PhaseStats, measure_phase, median, percentile, time_calls
from recsys_gnn.data.datamodule import RecDataModule
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.metrics import METRICS, ndcg_at_k
from recsys_gnn.eval.ranking import (
    FullRankingMetric,
    SparseRows,
    evaluate_full_ranking,
    in_sorted,
    top_k_indices,
)
from recsys_gnn.models.module import RecModule
from recsys_gnn.pipeline import build_model, load_data

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
DEFAULT_MODELS = (
    "mf",
    "lightgcn_id",
    "compressor:gcn",
    "compressor:gat",
    "compressor:lightgcn",
    "compressor:sage",
)
Record = dict[str, Any]


@dataclass
class BenchSettings:
    """What to run and how often.

    Args:
        datasets: dataset config names (``conf/dataset/<name>.yaml``).
        models: ``model`` config names, or ``compressor:<gnn>`` for the GNN compressor with that ``gnn``.
        eval_models: models whose full-ranking evaluation is timed.
        serve_model: model whose tables are exported and served.
        profile_models: models whose training step is broken down (first dataset only).
        repeats: timed repeats of evaluation, serving rounds and cached encodes.
        epochs: timed training epochs per model (after ``warmup_epochs``).
        warmup_epochs: untimed first epochs.
        quality_epochs: train ``lightgcn_id`` this many epochs in all (0: just the timed ones) before its
            test NDCG@10 is taken (and RecBole's, with ``recbole``).
        encode_sample: texts per first-run encoding repeat (0: the whole catalogue).
        encode_repeats: first-run encoding repeats, each in a new empty cache folder.
        serve_requests: timed one-user requests per serving table.
        serve_batch: users per batch for serving throughput.
        synthetic_items / synthetic_users: size of the synthetic serving table (same dim as the model).
        lightgcn_layers: ``model.num_layers`` of ``lightgcn_id`` (the reference's 2).
        recbole: also time RecBole's LightGCN on the same split (needs ``recbole`` importable).
        overrides: extra Hydra overrides for every run.
        work_dir: scratch folder (caches, runs, artifacts).
        cache_dir: encoder cache used for training; default a new folder in ``work_dir`` (so the full
            catalogue encode is a first run).
        seed: seed of samples and synthetic tables.
    """

    datasets: Sequence[str] = ("lastfm", "ml-latest-small")
    models: Sequence[str] = DEFAULT_MODELS
    eval_models: Sequence[str] = ("lightgcn_id",)
    serve_model: str = "compressor:gcn"
    profile_models: Sequence[str] = ("lightgcn_id", "compressor:gcn")
    repeats: int = 5
    epochs: int = 3
    warmup_epochs: int = 1
    quality_epochs: int = 0
    encode_sample: int = 2000
    encode_repeats: int = 3
    serve_requests: int = 500
    serve_batch: int = 256
    synthetic_items: int = 20000
    synthetic_users: int = 2000
    lightgcn_layers: int = 2
    recbole: bool = False
    overrides: Sequence[str] = ()
    work_dir: Path = Path("/tmp/recsys_gnn_bench")
    cache_dir: Path | None = None
    conf_dir: Path = CONF_DIR
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_record(
    dataset: str,
    phase: str,
    name: str,
    metric: str,
    values: Sequence[float],
    unit: str,
    stats: PhaseStats | None = None,
    **extra: Any,
) -> Record:
    """One result row: the median of ``values`` with the phase's resources."""
    rec: Record = {
        "dataset": dataset,
        "phase": phase,
        "name": name,
        "metric": metric,
        "value": median(values),
        "unit": unit,
        "n": len(values),
        "values": [float(v) for v in values],
    }
    if stats is not None:
        rec.update(stats.as_dict())
    rec.update(extra)
    return rec


# -- configs ----------------------------------------------------------------------------------------------------
def model_overrides(spec: str, lightgcn_layers: int) -> list[str]:
    """Hydra overrides for a model spec: ``mf`` -> ``model=mf``; ``compressor:gat`` -> ``model=compressor gnn=gat``."""
    model, _, gnn = spec.partition(":")
    out = [f"model={model}"]
    if gnn:
        out.append(f"gnn={gnn}")
    if model == "lightgcn_id":
        out.append(f"model.num_layers={lightgcn_layers}")
    return out


def compose_cfg(settings: BenchSettings, dataset: str, extra: Sequence[str] = ()) -> DictConfig:
    """``conf/train.yaml`` for ``dataset`` (with its own domain), scratch paths and ``extra`` overrides."""
    ds_file = Path(settings.conf_dir) / "dataset" / f"{dataset}.yaml"
    if not ds_file.is_file():
        raise FileNotFoundError(f"no dataset config {ds_file}")
    domain = OmegaConf.load(ds_file).get("domain")
    overrides = [
        f"dataset={dataset}",
        *([f"domain={domain}"] if domain else []),
        f"paths.output_dir={Path(settings.work_dir) / 'runs' / dataset}",
        f"paths.cache_dir={cache_root(settings)}",
        "logger=none",
        *settings.overrides,
        *extra,
    ]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(settings.conf_dir).resolve()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def cache_root(settings: BenchSettings) -> Path:
    """The ``paths.cache_dir`` of every run (the encoder cache lives in ``<it>/encoder``)."""
    return Path(settings.cache_dir) if settings.cache_dir is not None else Path(settings.work_dir) / "cache"


def bench_load(settings: BenchSettings, dataset: str) -> tuple[InteractionData, list[Record]]:
    """Read and split ``dataset`` once (timed)."""
    cfg = compose_cfg(settings, dataset)
    with measure_phase() as st:
        data = load_data(cfg)
    rec = make_record(
        dataset,
        "data",
        "read + preprocess + split",
        "seconds",
        [st.wall_s],
        "s",
        st,
        users=data.n_users,
        items=data.n_items,
        train=len(data.train),
        val=len(data.val),
        test=len(data.test),
    )
    return data, [rec]


# -- encoding ---------------------------------------------------------------------------------------------------
def bench_encoding(settings: BenchSettings, dataset: str, data: InteractionData) -> list[Record]:
    """Throughput of the default encoder (``conf/encoder``): first runs into empty caches, then cached runs.

    Every first run uses a new encoder object (model loading included) and a new empty cache folder, on a
    seeded random sample of ``encode_sample`` item texts. Then the whole catalogue is encoded into the
    cache the training runs use (a first run too, unless ``cache_dir`` was given and already holds it), and
    a new encoder object re-encodes the catalogue ``repeats`` times from that cache while its ``_encode``
    (the only code that runs the model) is watched: a cached run must not call it nor load the model.
    """
    cfg = compose_cfg(settings, dataset)
    texts = list(data.item_texts)
    rng = np.random.default_rng(settings.seed)
    n = len(texts) if settings.encode_sample <= 0 else min(settings.encode_sample, len(texts))
    scratch = Path(settings.work_dir) / "encode" / dataset
    out: list[Record] = []
    first: list[float] = []
    with measure_phase() as st:
        for r in range(settings.encode_repeats):
            folder = scratch / f"first-{r}"
            shutil.rmtree(folder, ignore_errors=True)
            sample = [texts[i] for i in np.sort(rng.choice(len(texts), size=n, replace=False))]
            encoder = hydra.utils.instantiate(cfg.encoder, cache_dir=str(folder))
            t0 = time.perf_counter()
            encoder.encode(sample)
            first.append(n / (time.perf_counter() - t0))
            del encoder
    if first:
        out.append(
            make_record(
                dataset,
                "encode",
                f"first run, {n} sampled texts (model load + encode, empty cache)",
                "throughput",
                first,
                "texts/s",
                st,
                texts=n,
                model=str(cfg.encoder.model_name),
            )
        )

    encoder = hydra.utils.instantiate(cfg.encoder)
    cached_before = encoder.cache_path(texts) is not None and encoder.cache_path(texts).exists()
    with measure_phase() as st:
        t0 = time.perf_counter()
        encoder.encode(texts)
        wall = time.perf_counter() - t0
    del encoder
    out.append(
        make_record(
            dataset,
            "encode",
            f"whole catalogue, {len(texts)} texts ({'cache hit' if cached_before else 'first run'})",
            "throughput",
            [len(texts) / wall],
            "texts/s",
            st,
            texts=len(texts),
            cache_hit=cached_before,
        )
    )

    encoder = hydra.utils.instantiate(cfg.encoder)
    with mock.patch.object(encoder, "_encode", wraps=encoder._encode) as spy, measure_phase() as st:
        times = time_calls(lambda: encoder.encode(texts), settings.repeats)
    no_work = spy.call_count == 0 and encoder._model is None
    out.append(
        make_record(
            dataset,
            "encode",
            f"cached run, {len(texts)} texts (new encoder object, same cache)",
            "throughput",
            [len(texts) / t for t in times],
            "texts/s",
            st,
            texts=len(texts),
            encoder_calls=spy.call_count,
            model_loaded=encoder._model is not None,
            no_encoder_work=no_work,
        )
    )
    return out


# -- training ---------------------------------------------------------------------------------------------------
class EpochTimer(pl.Callback):
    """Wall seconds of every training epoch (``on_train_epoch_start`` to ``on_train_epoch_end``)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.steps: list[int] = []
        self._t0 = 0.0
        self._step0 = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._step0 = trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.steps.append(trainer.global_step - self._step0)


class InterleavedReference(pl.Callback):
    """Run one epoch of a reference model (e.g. RecBole's LightGCN) after each of ours, outside our timing.

    Put it after :class:`EpochTimer` in the callback list, so our epoch's clock has stopped when it runs.
    """

    def __init__(self, reference: Any) -> None:
        self.reference = reference

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.reference.train_epoch()


@dataclass
class Trained:
    """A model trained by :func:`bench_training`, kept for evaluation and serving."""

    spec: str
    cfg: DictConfig
    module: RecModule
    datamodule: RecDataModule
    epochs: int


def build_module(cfg: DictConfig, data: InteractionData) -> tuple[RecModule, RecDataModule]:
    """Model, data module and Lightning module exactly as :func:`recsys_gnn.pipeline.train` builds them."""
    model = build_model(cfg, data)
    datamodule = RecDataModule(data, seed=cfg.seed, **cfg.data)
    optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = RecModule(model, data, optimizer=optimizer, scheduler=scheduler, **cfg.module)
    return module, datamodule


def quiet_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """``cfg.trainer`` without logger, checkpoints, progress bar or model summary (plus ``kwargs``)."""
    return hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def bench_training(
    settings: BenchSettings, dataset: str, data: InteractionData, spec: str, reference: Any | None = None
) -> tuple[list[Record], Trained]:
    """Time training epochs of ``spec`` with a Lightning callback around each epoch (validation off).

    The model is built as the pipeline builds it (graph construction included in the setup time); the
    Trainer is ``cfg.trainer`` with ``limit_val_batches=0``. The first ``warmup_epochs`` are not counted.
    ``lightgcn_id`` trains ``quality_epochs`` epochs in all when that is larger. A ``reference`` (with a
    ``train_epoch()`` method) trains one epoch after each of ours, so both are timed under the same load.
    """
    cfg = compose_cfg(settings, dataset, model_overrides(spec, settings.lightgcn_layers))
    pl.seed_everything(cfg.seed, workers=True)
    with measure_phase() as setup:
        module, datamodule = build_module(cfg, data)
    epochs = settings.warmup_epochs + settings.epochs
    if spec == "lightgcn_id":
        epochs = max(epochs, settings.quality_epochs)
    timer = EpochTimer()
    callbacks: list[pl.Callback] = [timer]
    if reference is not None:
        callbacks.append(InterleavedReference(reference))
    trainer = quiet_trainer(cfg, callbacks=callbacks, max_epochs=epochs, limit_val_batches=0)
    with measure_phase() as st:
        trainer.fit(module, datamodule=datamodule)
    timed = timer.times[settings.warmup_epochs :] or timer.times
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    recs = [
        make_record(dataset, "train", spec, "setup (build model + graph)", [setup.wall_s], "s", setup),
        make_record(
            dataset,
            "train",
            spec,
            "epoch",
            timed,
            "s",
            st,
            steps_per_epoch=timer.steps[-1] if timer.steps else 0,
            epochs_run=len(timer.times),
            warmup_epochs=settings.warmup_epochs,
            batch_size=int(cfg.data.batch_size),
            trainable_params=int(n_params),
            method="Lightning Trainer.fit, callback on_train_epoch_start/end, validation off",
            interleaved_with_reference=reference is not None,
        ),
    ]
    return recs, Trained(spec, cfg, module, datamodule, len(timer.times))


# -- evaluation -------------------------------------------------------------------------------------------------
def _eval_cache(module: RecModule, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``RecModule``'s ``on_{stage}_epoch_start`` computes: embeddings, then fold-in of eval histories."""
    with torch.no_grad():
        cache = module.model.embed()
        return module.model.fold_in(cache, module.histories[stage].to(cache[0].device), module.n_users)


def eval_loop(module: RecModule, datamodule: RecDataModule, stage: str = "test") -> dict[str, Any]:
    """One full-ranking pass with RecModule's evaluation calls, without Lightning, timed part by part.

    Parts: ``embed`` (embed + fold-in), ``batches`` (the DataLoader: CSR rows -> dense ``(B, I)`` targets
    and mask), ``score`` (``model.score``), ``metric`` (``FullRankingMetric.update``: checks, masking,
    top-k, metric sums, coverage) and ``compute``.
    """
    parts = dict.fromkeys(("embed", "batches", "score", "metric", "compute"), 0.0)
    module.model.eval()
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    cache = _eval_cache(module, stage)
    parts["embed"] = time.perf_counter() - t0
    metric = FullRankingMetric(ks=module.ks, num_items=module.n_items)
    loader = datamodule.test_dataloader() if stage == "test" else datamodule.val_dataloader()
    n_users = 0
    with torch.no_grad():
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            t1 = time.perf_counter()
            parts["batches"] += t1 - t0
            if batch is None:
                break
            scores = module.model.score(batch["user"], cache)
            t2 = time.perf_counter()
            metric.update(scores, batch["targets"], batch["mask"])
            t3 = time.perf_counter()
            parts["score"] += t2 - t1
            parts["metric"] += t3 - t2
            n_users += len(batch["user"])
        t0 = time.perf_counter()
        values = metric.compute()
        parts["compute"] = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    return {"seconds": total, "parts": parts, "n_users": n_users, "ndcg@10": _ndcg10(values)}


def _ndcg10(values: dict[str, Any]) -> float:
    for key in ("ndcg@10", "test/ndcg@10", "val/ndcg@10"):
        if key in values:
            return float(values[key])
    return float("nan")


def metric_update_breakdown(
    module: RecModule, datamodule: RecDataModule, stage: str = "test", k_ndcg: int = 10
) -> dict[str, Any]:
    """Attribute ``FullRankingMetric.update`` time by replaying its steps with the same functions.

    Steps: ``checks`` (CSR keys, target/mask overlap, users without targets, NaN), ``mask`` (``index_put`` of
    -inf at the known items' CSR positions), ``topk`` (``top_k_indices`` at the largest k, of which
    ``torch.topk`` alone is ``topk_raw``), ``metrics`` (relevance by sorted-key look-up, every metric at every
    k, coverage flags). Also returns per-user NDCG@k (mean and standard error), for noise estimates.
    """
    ks = module.ks
    kmax = max(ks)
    n_items = module.n_items
    parts = dict.fromkeys(("checks", "mask", "topk", "topk_raw", "metrics"), 0.0)
    per_user: list[torch.Tensor] = []
    rec = {k: torch.zeros(n_items, dtype=torch.bool) for k in ks}
    cache = _eval_cache(module, stage)
    loader = datamodule.test_dataloader() if stage == "test" else datamodule.val_dataloader()
    with torch.no_grad():
        for batch in loader:
            scores = module.model.score(batch["user"], cache)
            targets, mask = batch["targets"], batch["mask"]
            t0 = time.perf_counter()
            t = targets if isinstance(targets, SparseRows) else SparseRows.from_dense(targets)
            m = mask if isinstance(mask, SparseRows) else SparseRows.from_dense(mask)
            t_keys, m_keys = t.keys(n_items), m.keys(n_items)
            _ = bool(in_sorted(t_keys, m_keys).any())
            n_rel = t.indptr[1:] - t.indptr[:-1]
            keep = n_rel > 0
            _ = bool(torch.isnan(scores).any())
            t1 = time.perf_counter()
            masked = scores.index_put((m.row_ids(), m.indices), scores.new_tensor(float("-inf")))
            rows = keep.nonzero().squeeze(1)
            if len(rows) < scores.shape[0]:
                masked, n_rel = masked[rows], n_rel[rows]
            t2 = time.perf_counter()
            idx = top_k_indices(masked, kmax)
            t3 = time.perf_counter()
            masked.topk(kmax, dim=1)
            t4 = time.perf_counter()
            keys = rows[:, None] * n_items + idx
            hits = in_sorted(keys, t_keys)
            unmasked = ~in_sorted(keys, m_keys)
            for k in ks:
                for fn in METRICS.values():
                    fn(hits, n_rel, k).sum()
                rec[k][idx[:, :k][unmasked[:, :k]]] = True
            t5 = time.perf_counter()
            parts["checks"] += t1 - t0
            parts["mask"] += t2 - t1
            parts["topk"] += t3 - t2
            parts["topk_raw"] += t4 - t3
            parts["metrics"] += t5 - t4
            per_user.append(ndcg_at_k(hits, n_rel, k_ndcg))
    values = torch.cat(per_user) if per_user else torch.zeros(0, dtype=torch.float64)
    n = len(values)
    return {
        "parts": parts,
        "ndcg_mean": float(values.mean()) if n else float("nan"),
        "ndcg_se": float(values.std() / np.sqrt(n)) if n > 1 else float("nan"),
        "n_users": n,
    }


def bench_eval(
    settings: BenchSettings, dataset: str, trained: Trained
) -> tuple[list[Record], dict[str, Any]]:
    """Time full-ranking evaluation of every test user three ways, all with the repo's evaluation code.

    1. ``Trainer.test`` on the RecModule (the path training's validation and the pipeline's test use);
    2. the same RecModule calls without Lightning, split into parts (:func:`eval_loop`);
    3. :func:`recsys_gnn.eval.ranking.evaluate_full_ranking` on the model's scores (embedding included).
    """
    module, dm, cfg = trained.module, trained.datamodule, trained.cfg
    name = trained.spec
    recs: list[Record] = []
    n_items = module.n_items
    batch_users = int(dm.eval_batch_size)

    trainer = quiet_trainer(cfg)
    lightning: list[float] = []
    ndcg = float("nan")
    with measure_phase() as st:
        for _ in range(settings.repeats):
            t0 = time.perf_counter()
            out = trainer.test(module, datamodule=dm, verbose=False)
            lightning.append(time.perf_counter() - t0)
            ndcg = _ndcg10(out[0]) if out else float("nan")
    n_users = len(dm.test_dataloader().dataset)
    common = {"eval_batch_size": batch_users, "n_users": n_users, "n_items": n_items}
    recs.append(
        make_record(
            dataset, "eval", name, "Trainer.test, all users (s)", lightning, "s", st, ndcg10=ndcg, **common
        )
    )
    recs.append(
        make_record(
            dataset,
            "eval",
            name,
            "Trainer.test throughput",
            [n_users / t for t in lightning],
            "users/s",
            None,
            **common,
        )
    )

    loops: list[dict[str, Any]] = []
    with measure_phase() as st:
        for _ in range(settings.repeats):
            loops.append(eval_loop(module, dm))
    parts = {k: median([lp["parts"][k] for lp in loops]) for k in loops[0]["parts"]}
    recs.append(
        make_record(
            dataset,
            "eval",
            name,
            "RecModule calls without Lightning (s)",
            [lp["seconds"] for lp in loops],
            "s",
            st,
            ndcg10=loops[-1]["ndcg@10"],
            parts_s=parts,
            **common,
        )
    )

    targets, mask = dm.stage_matrices("test")

    def run_efr() -> dict[str, float]:
        cache = _eval_cache(module, "test")
        return evaluate_full_ranking(
            lambda users: module.model.score(users, cache),
            targets,
            mask,
            ks=module.ks,
            batch_size=batch_users,
        )

    efr: list[float] = []
    res: dict[str, float] = {}
    with measure_phase() as st:
        for _ in range(settings.repeats):
            t0 = time.perf_counter()
            res = run_efr()
            efr.append(time.perf_counter() - t0)
    recs.append(
        make_record(
            dataset,
            "eval",
            name,
            "evaluate_full_ranking (s)",
            efr,
            "s",
            st,
            ndcg10=res.get("ndcg@10", float("nan")),
            **common,
        )
    )
    breakdown = metric_update_breakdown(module, dm)
    profile = {
        "dataset": dataset,
        "model": name,
        "eval_loop_parts_s": parts,
        "metric_update_parts_s": breakdown["parts"],
        "ndcg10_per_user_mean": breakdown["ndcg_mean"],
        "ndcg10_per_user_se": breakdown["ndcg_se"],
        "n_users": breakdown["n_users"],
        "dense_scores_all_users_mb": n_users * n_items * 4 / 2**20,
        "dense_batch_mb": batch_users * n_items * (4 + 1 + 1) / 2**20,
    }
    return recs, profile


def paired_eval(settings: BenchSettings, dataset: str, trained: Trained, reference: Any) -> list[Record]:
    """Alternate our ``Trainer.test`` with the reference's ``evaluate()``, ``repeats`` (at most 3) times each."""
    trainer = quiet_trainer(trained.cfg)
    ours: list[float] = []
    for _ in range(max(1, min(settings.repeats, 3))):
        t0 = time.perf_counter()
        trainer.test(trained.module, datamodule=trained.datamodule, verbose=False)
        ours.append(time.perf_counter() - t0)
        reference.evaluate()
    return [
        make_record(
            dataset,
            "reference",
            f"{trained.spec}, paired with RecBole",
            "Trainer.test, all users (s)",
            ours,
            "s",
        ),
        make_record(
            dataset,
            "reference",
            "RecBole LightGCN",
            "Trainer.evaluate, all test users (s)",
            list(reference.eval_s),
            "s",
        ),
    ]


# -- training step breakdown -------------------------------------------------------------------------------------
def profile_training(trained: Trained, steps: int | None = None, top_ops: int = 10) -> dict[str, Any]:
    """Break one epoch of training steps into parts with a plain loop, then list the heaviest torch ops.

    Parts per epoch: ``batch`` (DataLoader: sampling negatives), ``forward`` (``model.loss``: embed + loss),
    ``backward``, ``optimizer`` (Adam step + zero_grad); ``embed_forward`` is ``model.embed()`` alone on
    every step (a second, separate forward, to attribute the forward time). The loop does what
    ``RecModule.training_step`` does minus Lightning's logging. Continues training the model.
    """
    module, dm = trained.module, trained.datamodule
    model = module.model
    model.train()
    opt = module.configure_optimizers()
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    parts = dict.fromkeys(("batch", "forward", "backward", "optimizer", "embed_forward"), 0.0)
    n = 0
    t_epoch = time.perf_counter()
    it = iter(dm.train_dataloader())
    while steps is None or n < steps:
        t0 = time.perf_counter()
        batch = next(it, None)
        t1 = time.perf_counter()
        if batch is None:
            break
        loss, _ = model.loss(batch, kind=module.loss_kind)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        with torch.no_grad():
            model.embed()
        t5 = time.perf_counter()
        parts["batch"] += t1 - t0
        parts["forward"] += t2 - t1
        parts["backward"] += t3 - t2
        parts["optimizer"] += t4 - t3
        parts["embed_forward"] += t5 - t4
        n += 1
    epoch_s = time.perf_counter() - t_epoch - parts["embed_forward"]
    ops = _top_ops(trained, opt, top_ops)
    return {"model": trained.spec, "steps": n, "loop_epoch_s": epoch_s, "parts_s": parts, "top_ops": ops}


def _top_ops(trained: Trained, opt: torch.optim.Optimizer, top: int, steps: int = 5) -> list[dict[str, Any]]:
    """The ``top`` torch ops by self CPU time over ``steps`` training steps (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    module, model = trained.module, trained.module.model
    batches = []
    for batch in trained.datamodule.train_dataloader():
        batches.append(batch)
        if len(batches) == steps:
            break
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            loss, _ = model.loss(batch, kind=module.loss_kind)
            loss.backward()
            opt.step()
            opt.zero_grad()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / max(len(batches), 1),
            "self_ms_per_step": e.self_cpu_time_total / 1000 / max(len(batches), 1),
            "share": e.self_cpu_time_total / total,
        }
        for e in rows
    ]


# -- serving ----------------------------------------------------------------------------------------------------
def _known_csr(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> sp.csr_matrix:
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_items))


def _batch_recommend(score_fn: Any, known: sp.csr_matrix, rows: np.ndarray, k: int) -> torch.Tensor:
    """Top-``k`` of a batch of stored users with their known items excluded."""
    scores = score_fn(torch.from_numpy(rows))
    sub = known[rows]
    row_of = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[torch.from_numpy(row_of), torch.from_numpy(sub.indices.astype(np.int64))] = float("-inf")
    return torch.topk(scores, k, dim=1).indices


def serve_threads() -> list[int]:
    """Torch thread counts serving is timed at: the process's setting, and 1 (one request per worker)."""
    return sorted({torch.get_num_threads(), 1}, reverse=True)


def serve_timings(
    settings: BenchSettings,
    dataset: str,
    label: str,
    load: Any,
    k: int = 10,
) -> list[Record]:
    """Time top-``k`` retrieval from an exported artifact (``load()`` returns it; loading is timed).

    Rows, at each of :func:`serve_threads` torch thread counts: ``Artifact.recommend`` for one user (id
    look-up, scores, known items excluded, ``torch.topk``, result dicts) p50/p99; scores + ``topk`` alone for
    one user p50/p99 and batched users/s (:func:`recsys_gnn.compress.report.measure_latency`); batched
    recommendation with known items excluded (users/s).
    """
    from recsys_gnn.compress.report import measure_latency

    recs: list[Record] = []
    with measure_phase() as st:
        t0 = time.perf_counter()
        art = load()
        load_s = time.perf_counter() - t0
    shape = {"n_items": art.n_items, "n_users": art.n_users, "dim": art.dim, "quantization": art.quantization}
    recs.append(make_record(dataset, "serve", label, "artifact load", [load_s], "s", st, **shape))
    rng = np.random.default_rng(settings.seed)
    ids = [art.user_ids[i] for i in rng.integers(0, art.n_users, size=settings.serve_requests + 20)]
    known = _known_csr(art.known_indptr, art.known_indices, art.n_items)
    order = np.arange(art.n_users)
    before = torch.get_num_threads()
    try:
        for threads in serve_threads():
            torch.set_num_threads(threads)
            one: list[float] = []
            batch_rates: list[float] = []
            with measure_phase() as st:
                with torch.inference_mode():
                    for j, uid in enumerate(ids):
                        t0 = time.perf_counter()
                        art.recommend(uid, k=k)
                        if j >= 20:
                            one.append(time.perf_counter() - t0)
                lat = measure_latency(
                    art.score_users,
                    art.n_users,
                    k=k,
                    repeats=settings.serve_requests,
                    batch_size=settings.serve_batch,
                )
                with torch.inference_mode():
                    for _ in range(settings.repeats):
                        t0 = time.perf_counter()
                        for start in range(0, art.n_users, settings.serve_batch):
                            _batch_recommend(
                                art.score_users, known, order[start : start + settings.serve_batch], k
                            )
                        batch_rates.append(art.n_users / (time.perf_counter() - t0))
            ms = [t * 1000 for t in one]
            info = {**shape, "torch_threads": threads, "requests": len(ms)}
            name = f"{label}, {threads} thread{'s' * (threads > 1)}"
            recs += [
                make_record(
                    dataset, "serve", name, "recommend() 1 user p50", [percentile(ms, 50)], "ms", st, **info
                ),
                make_record(
                    dataset, "serve", name, "recommend() 1 user p99", [percentile(ms, 99)], "ms", None, **info
                ),
                make_record(
                    dataset, "serve", name, "scores+topk 1 user p50", [lat["p50_ms"]], "ms", None, **info
                ),
                make_record(
                    dataset, "serve", name, "scores+topk 1 user p99", [lat["p99_ms"]], "ms", None, **info
                ),
                make_record(
                    dataset,
                    "serve",
                    name,
                    f"scores+topk batches of {lat['batch_size']}",
                    [lat["throughput_users_per_s"]],
                    "users/s",
                    None,
                    **info,
                ),
                make_record(
                    dataset,
                    "serve",
                    name,
                    f"batched recommend, seen excluded, batches of {settings.serve_batch}",
                    batch_rates,
                    "users/s",
                    None,
                    **info,
                ),
            ]
    finally:
        torch.set_num_threads(before)
    return recs


def export_trained(settings: BenchSettings, dataset: str, trained: Trained, data: InteractionData) -> Path:
    """Write ``trained``'s tables as a pipeline run folder and export it with ``recsys_gnn.export``."""
    from recsys_gnn.export import export_run
    from recsys_gnn.tables import save_tables

    run = Path(settings.work_dir) / "serve" / dataset / trained.spec.replace(":", "-")
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    module = trained.module
    with torch.no_grad():
        module.model.eval()
        users, items = module.model.embed()
    save_tables(run / "tables", users, items, data)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(trained.cfg, resolve=True))
    (run / "metrics.json").write_text(json.dumps({}))
    (run / "protocol.json").write_text(json.dumps(data.protocol, default=str))
    return export_run(
        run, out=run / "artifact", quantization="fp32", latency_args={"repeats": 20, "batch_size": 64}
    )


def synthetic_artifact(settings: BenchSettings, dim: int) -> Path:
    """An fp32 artifact with random ``synthetic_users x dim`` and ``synthetic_items x dim`` tables.

    Each user knows 40 random items (excluded from its recommendations, as in a real artifact).
    """
    from recsys_gnn.export import write_artifact
    from recsys_gnn.tables import Tables

    n_users, n_items = settings.synthetic_users, settings.synthetic_items
    gen = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    per_user = min(40, n_items - 1)
    known = [np.sort(rng.choice(n_items, size=per_user, replace=False)) for _ in range(n_users)]
    tables = Tables(
        user_emb=torch.randn(n_users, dim, generator=gen),
        item_emb=torch.randn(n_items, dim, generator=gen),
        known_indptr=np.arange(n_users + 1, dtype=np.int64) * per_user,
        known_indices=np.concatenate(known).astype(np.int64),
        user_ids=[f"u{i}" for i in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        item_titles=[f"item {i}" for i in range(n_items)],
    )
    out = Path(settings.work_dir) / "serve" / f"synthetic-{n_items}x{dim}"
    shutil.rmtree(out, ignore_errors=True)
    return write_artifact(tables, out, "fp32", {"source_run": "synthetic (random normal tables)"})


def direct_topk_timings(
    settings: BenchSettings, dataset: str, label: str, users: torch.Tensor, items: torch.Tensor, k: int = 10
) -> list[Record]:
    """Fallback when the export/serving modules are absent: ``torch.topk`` over the tables directly."""
    rng = np.random.default_rng(settings.seed)
    rows = rng.integers(0, len(users), size=settings.serve_requests + 20)
    one: list[float] = []
    with measure_phase() as st, torch.inference_mode():
        for j, r in enumerate(rows):
            t0 = time.perf_counter()
            torch.topk(users[int(r) : int(r) + 1] @ items.T, k, dim=1)
            if j >= 20:
                one.append(time.perf_counter() - t0)
    ms = [t * 1000 for t in one]
    shape = {
        "n_items": len(items),
        "dim": items.shape[1],
        "method": "torch.topk over the trained tables (no artifact)",
    }
    return [
        make_record(
            dataset, "serve", label, "scores+topk 1 user p50", [percentile(ms, 50)], "ms", st, **shape
        ),
        make_record(
            dataset, "serve", label, "scores+topk 1 user p99", [percentile(ms, 99)], "ms", None, **shape
        ),
    ]
