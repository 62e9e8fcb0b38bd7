"""RecBole reference (recsys_gnn.bench.recbole_ref): every file it writes stays under its work folder.

Skipped when RecBole is not importable; install it beside the project as experiments/leaderboard/run.sh does
(``pip install --no-deps --target /tmp/recbole-pkgs recbole==1.2.1 texttable tabulate thop colorama==0.4.4``)
and run with ``PYTHONPATH=/tmp/recbole-pkgs``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsys_gnn.bench.recbole_ref import RecBoleLightGCN, recbole_available
from recsys_gnn.pipeline import load_data

pytestmark = pytest.mark.skipif(not recbole_available(), reason="recbole not importable (optional reference)")


def test_recbole_writes_only_under_its_work_folder(
    tiny_env: Path, make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_data(make_cfg([]))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ref = RecBoleLightGCN(data, Path("bench") / "recbole", name="tiny", extra_config={"embedding_size": 8})
    assert os.getcwd() == str(cwd)
    ref.train_epoch()
    ref.evaluate()
    ref.close()
    assert 0.0 <= ref.result["ndcg@10"] <= 1.0
    assert sorted(p.name for p in cwd.iterdir()) == ["bench"]  # no log/, saved/, log_tensorboard/ in the cwd
    work = cwd / "bench" / "recbole"
    assert ref.work == work
    events = list((work / "log_tensorboard").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert (work / "saved").is_dir()
