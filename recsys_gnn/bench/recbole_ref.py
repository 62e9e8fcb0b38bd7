"""Optional same-machine reference: RecBole's LightGCN trained and evaluated on the benchmark's exact split.

RecBole is not a dependency of this project. Install it beside the project's environment, e.g.::

    .venv/bin/pip install --no-deps --target /tmp/recbole-pkgs recbole==1.2.1 texttable tabulate thop colorama==0.4.4
    PYTHONPATH=/tmp/recbole-pkgs .venv/bin/python -m recsys_gnn.bench --recbole

The split is written as RecBole "benchmark" atomic files (``<name>.train/valid/test.inter``), so RecBole
trains and ranks on the very pairs our models use. Settings are RecBole 1.2.1's defaults for LightGCN
(``embedding_size`` 64, ``n_layers`` 2, ``reg_weight`` 1e-5, Adam lr 1e-3, ``train_batch_size`` 2048, one
uniform negative, ``eval_batch_size`` 4096 interactions, full ranking), on CPU.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsys_gnn.bench.machine import measure_phase
from recsys_gnn.data.interactions import InteractionData

log = logging.getLogger(__name__)


def recbole_available() -> bool:
    """Whether ``recbole`` can be imported."""
    return importlib.util.find_spec("recbole") is not None


def _patch_scipy() -> None:
    """RecBole 1.2.1 calls ``dok_matrix._update``, which scipy >= 1.12 removed; restore it (same semantics)."""
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = lambda self, d: self._dict.update(d)  # noqa: SLF001


def write_atomic(data: InteractionData, root: Path, name: str) -> Path:
    """Write train/val/test pairs as RecBole benchmark atomic files ``root/name/name.{train,valid,test}.inter``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, pairs in (("train", data.train), ("valid", data.val), ("test", data.test)):
        with open(folder / f"{name}.{suffix}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\n")
            f.writelines(f"u{u}\ti{i}\n" for u, i in np.asarray(pairs, dtype=np.int64))
    return folder


def run_recbole_lightgcn(
    data: InteractionData,
    work: Path,
    *,
    name: str,
    epochs: int,
    warmup_epochs: int,
    eval_repeats: int,
    seed: int = 2020,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train RecBole's LightGCN ``warmup_epochs + epochs`` epochs, timing each, then time test evaluations.

    Returns:
        ``epoch_s`` (timed epochs), ``eval_s`` (``Trainer.evaluate`` on the test split, each a full ranking of
        every test user), ``ndcg10`` / ``recall10`` of the last evaluation, the epochs trained, the settings,
        and the resources of the training and evaluation phases.
    """
    if not recbole_available():
        raise ImportError("recbole is not importable; see recsys_gnn.bench.recbole_ref for how to install it")
    _patch_scipy()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    threads = torch.get_num_threads()
    write_atomic(data, work, name)
    config = {
        "data_path": str(work),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "use_gpu": False,
        "device": "cpu",
        "seed": seed,
        "epochs": epochs + warmup_epochs,
        "metrics": ["NDCG", "Recall"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "show_progress": False,
        "checkpoint_dir": str(work / "saved"),
        "state": "WARNING",
        **(extra_config or {}),
    }
    cfg = Config(model="LightGCN", dataset=name, config_dict=config)
    init_seed(cfg["seed"], cfg["reproducibility"])
    torch.set_num_threads(threads)  # RecBole's init may change it; keep the benchmark's setting
    dataset = create_dataset(cfg)
    train, _valid, test = data_preparation(cfg, dataset)
    model = LightGCN(cfg, train.dataset)
    trainer = Trainer(cfg, model)
    times: list[float] = []
    with measure_phase() as train_stats:
        for epoch in range(epochs + warmup_epochs):
            t0 = time.perf_counter()
            trainer._train_epoch(train, epoch, show_progress=False)  # what Trainer.fit runs per epoch
            times.append(time.perf_counter() - t0)
    evals: list[float] = []
    result: dict[str, float] = {}
    with measure_phase() as eval_stats:
        for _ in range(eval_repeats):
            t0 = time.perf_counter()
            result = dict(trainer.evaluate(test, load_best_model=False, show_progress=False))
            evals.append(time.perf_counter() - t0)
    settings = {
        key: cfg[key]
        for key in (
            "embedding_size",
            "n_layers",
            "reg_weight",
            "learning_rate",
            "train_batch_size",
            "eval_batch_size",
        )
    }
    return {
        "epoch_s": times[warmup_epochs:] or times,
        "eval_s": evals,
        "ndcg10": float(result.get("ndcg@10", float("nan"))),
        "recall10": float(result.get("recall@10", float("nan"))),
        "epochs_trained": len(times),
        "n_test_users": int(len(np.unique(np.asarray(data.test)[:, 0]))),
        "settings": settings,
        "train_stats": train_stats,
        "eval_stats": eval_stats,
        "recbole_version": _version(),
    }


def _version() -> str:
    import recbole

    return str(getattr(recbole, "__version__", "unknown"))
