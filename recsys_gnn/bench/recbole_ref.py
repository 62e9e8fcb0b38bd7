"""Optional same-machine reference: RecBole's LightGCN trained and evaluated on the benchmark's exact split.

RecBole is not a dependency of this project. Install it beside the project's environment, e.g.::

    .venv/bin/pip install --no-deps --target /tmp/recbole-pkgs recbole==1.2.1 texttable tabulate thop colorama==0.4.4
    PYTHONPATH=/tmp/recbole-pkgs .venv/bin/python -m recsys_gnn.bench --recbole

The split is written as RecBole "benchmark" atomic files (``<name>.train/valid/test.inter``), so RecBole
trains and ranks on the very pairs our models use. Settings are RecBole 1.2.1's defaults for LightGCN
(``embedding_size`` 64, ``n_layers`` 2, ``reg_weight`` 1e-5, Adam lr 1e-3, ``train_batch_size`` 2048, one
uniform negative, ``eval_batch_size`` 4096 interactions, full ranking), on CPU.

Everything RecBole writes stays under the reference's ``work`` folder (the benchmark's work directory): its
checkpoints (``saved/``), its TensorBoard events (``log_tensorboard/``, which RecBole 1.2.1 names relative to
the working directory and writes lazily, so a ``chdir`` alone is not enough) and any other relative path
(``log/``), as RecBole is set up with ``work`` as the working directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

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


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """Run the block with ``path`` as the working directory (RecBole writes ``log/`` etc. relative to it)."""
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def _tensorboard_under(folder: Path) -> Any:
    """A stand-in for ``recbole.utils.get_tensorboard`` that puts the events under ``folder`` (absolute)."""
    from torch.utils.tensorboard import SummaryWriter

    def get_tensorboard(logger: Any) -> Any:
        name = next(
            (Path(h.baseFilename).stem for h in logger.handlers if hasattr(h, "baseFilename")), "LightGCN"
        )
        return SummaryWriter(str(folder / name))

    return get_tensorboard


def write_atomic(data: InteractionData, root: Path, name: str) -> Path:
    """Write train/val/test pairs as RecBole benchmark atomic files ``root/name/name.{train,valid,test}.inter``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, pairs in (("train", data.train), ("valid", data.val), ("test", data.test)):
        with open(folder / f"{name}.{suffix}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\n")
            f.writelines(f"u{u}\ti{i}\n" for u, i in np.asarray(pairs, dtype=np.int64))
    return folder


class RecBoleLightGCN:
    """RecBole's LightGCN set up on the benchmark's split, trained and evaluated one call at a time.

    The benchmark interleaves it with our own model (one RecBole epoch after each of our epochs, one RecBole
    evaluation after each of ours), so both see the same machine load.

    Args:
        data: the split dataset.
        work: scratch folder for everything RecBole writes (atomic files, ``saved/`` checkpoints,
            ``log_tensorboard/``); created if missing.
        name: RecBole dataset name (file stem).
        seed: RecBole's seed.
        extra_config: RecBole config entries overriding its defaults.
    """

    def __init__(
        self,
        data: InteractionData,
        work: Path,
        *,
        name: str,
        seed: int = 2020,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        if not recbole_available():
            raise ImportError(
                "recbole is not importable; see recsys_gnn.bench.recbole_ref for how to install it"
            )
        _patch_scipy()
        import recbole.trainer.trainer as recbole_trainer
        import torch
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.general_recommender import LightGCN
        from recbole.trainer import Trainer
        from recbole.utils import init_seed

        threads = torch.get_num_threads()
        work = Path(work).resolve()  # absolute: RecBole is set up with work as the working directory
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        write_atomic(data, work, name)
        config = {
            "data_path": str(work),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]},
            "use_gpu": False,
            "device": "cpu",
            "seed": seed,
            "metrics": ["NDCG", "Recall"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "show_progress": False,
            "checkpoint_dir": str(work / "saved"),
            "state": "WARNING",
            **(extra_config or {}),
        }
        original_tensorboard = recbole_trainer.get_tensorboard
        recbole_trainer.get_tensorboard = _tensorboard_under(work / "log_tensorboard")
        try:
            with _working_directory(work):
                self.cfg = Config(model="LightGCN", dataset=name, config_dict=config)
                init_seed(self.cfg["seed"], self.cfg["reproducibility"])
                torch.set_num_threads(threads)  # RecBole's set-up may change it; keep the benchmark's setting
                dataset = create_dataset(self.cfg)
                self.train_data, self.valid_data, self.test_data = data_preparation(self.cfg, dataset)
                self.trainer = Trainer(self.cfg, LightGCN(self.cfg, self.train_data.dataset))
        finally:
            recbole_trainer.get_tensorboard = original_tensorboard
        self.epoch_s: list[float] = []
        self.eval_s: list[float] = []
        self.result: dict[str, float] = {}
        self.n_test_users = int(len(np.unique(np.asarray(data.test)[:, 0])))

    def train_epoch(self) -> float:
        """Train one epoch (what ``Trainer.fit`` runs per epoch); its wall seconds."""
        t0 = time.perf_counter()
        self.trainer._train_epoch(self.train_data, len(self.epoch_s), show_progress=False)
        self.epoch_s.append(time.perf_counter() - t0)
        return self.epoch_s[-1]

    def evaluate(self) -> float:
        """Full-ranking evaluation of every test user (``Trainer.evaluate``); its wall seconds."""
        t0 = time.perf_counter()
        self.result = dict(self.trainer.evaluate(self.test_data, load_best_model=False, show_progress=False))
        self.eval_s.append(time.perf_counter() - t0)
        return self.eval_s[-1]

    def close(self) -> None:
        """Flush and close RecBole's TensorBoard writer (its files are under ``work/log_tensorboard``)."""
        self.trainer.tensorboard.close()

    @property
    def settings(self) -> dict[str, Any]:
        """The RecBole settings that matter for the comparison."""
        keys = (
            "embedding_size",
            "n_layers",
            "reg_weight",
            "learning_rate",
            "train_batch_size",
            "eval_batch_size",
        )
        return {key: self.cfg[key] for key in keys}

    def summary(self, warmup_epochs: int) -> dict[str, Any]:
        """Timed epochs (after ``warmup_epochs``), evaluations, last NDCG@10/Recall@10 and settings."""
        import recbole

        return {
            "epoch_s": self.epoch_s[warmup_epochs:] or self.epoch_s,
            "eval_s": self.eval_s,
            "ndcg10": float(self.result.get("ndcg@10", float("nan"))),
            "recall10": float(self.result.get("recall@10", float("nan"))),
            "epochs_trained": len(self.epoch_s),
            "n_test_users": self.n_test_users,
            "settings": self.settings,
            "recbole_version": str(getattr(recbole, "__version__", "unknown")),
        }
