"""One job skeleton (recsys_gnn.job) with variants plugged in and no circle of imports: the skeleton knows no
variant, variants know neither each other nor the dispatcher (recsys_gnn.pipeline), which picks one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recsys_gnn.pipeline as pipeline
from recsys_gnn import job, ranking

PACKAGE = Path(job.__file__).resolve().parent
SKELETON = "recsys_gnn.job"
DISPATCHER = "recsys_gnn.pipeline"
VARIANTS = ("recsys_gnn.ranking", "recsys_gnn.rating.run")


def _file(module: str) -> Path | None:
    """The source file of a ``recsys_gnn`` module or package, None for anything else."""
    parts = module.split(".")
    if parts[0] != "recsys_gnn":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(module: str) -> set[str]:
    """The ``recsys_gnn`` modules ``module`` imports anywhere in its file (functions included), with the
    packages each import runs (``a.b.c`` imports ``a`` and ``a.b`` first)."""
    path = _file(module)
    if path is None:
        return set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            # `from recsys_gnn import job` imports the module recsys_gnn.job
            names.update(f"{base}.{a.name}" for a in node.names if _file(f"{base}.{a.name}"))
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[: i + 1]) for i in range(len(parts)) if _file(".".join(parts[: i + 1])))
    return found - {module}


def _reachable(module: str) -> set[str]:
    """Every ``recsys_gnn`` module importing ``module`` may import, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in _imports(todo.pop()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen - {module}


def test_import_graph_walker_sees_the_known_edges() -> None:
    assert SKELETON in _imports("recsys_gnn.rating.run") and SKELETON in _imports("recsys_gnn.ranking")
    assert {SKELETON, "recsys_gnn.ranking", "recsys_gnn.rating.run"} <= _imports(DISPATCHER)


def test_the_skeleton_knows_no_variant_nor_the_dispatcher() -> None:
    reached = _reachable(SKELETON)
    assert not reached & {DISPATCHER, *VARIANTS}, sorted(reached & {DISPATCHER, *VARIANTS})


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_reaches_neither_the_dispatcher_nor_another_variant(variant: str) -> None:
    others = {DISPATCHER, *VARIANTS} - {variant}
    reached = _reachable(variant)
    assert not reached & others, f"{variant} imports {sorted(reached & others)}"


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ([], "RankingJob"),
        (["domain=news"], "ImpressionJob"),
        (["domain=news", "data.sampling=uniform"], "RankingJob"),
        (["task=rating"], "RatingJob"),
    ],
)
def test_the_dispatcher_picks_the_variant_from_the_config(make_cfg, overrides: list[str], name: str) -> None:
    variant = pipeline.variant_for(make_cfg(overrides))
    assert type(variant).__name__ == name and isinstance(variant, job.Variant)


def test_old_pipeline_names_still_import() -> None:
    from recsys_gnn.pipeline import (  # noqa: F401 - imported by bench, study and experiment scripts
        PROTOCOL_TEXT,
        build_context,
        build_model,
        configure_wandb_mode,
        finish_wandb,
        git_commit,
        instantiate_loggers,
        load_data,
        run_job,
        save_run_info,
        train,
        wandb_identity,
    )

    assert load_data is job.load_data and build_model is job.build_model
    assert save_run_info is ranking.save_run_info and PROTOCOL_TEXT == ranking.PROTOCOL_TEXT


def test_impression_job_trains_on_impressions_whatever_data_sampling_says(make_cfg) -> None:
    from types import SimpleNamespace

    from recsys_gnn.data.errors import ConfigError

    cfg = make_cfg([])  # data.sampling=uniform
    no_impressions = SimpleNamespace(impressions=None, protocol={"dataset": "x"})
    with pytest.raises(ConfigError, match="data.sampling=impressions needs impression logs"):
        ranking.ImpressionJob().datamodule(cfg, no_impressions)  # type: ignore[arg-type]


def test_skip_finished_returns_the_recorded_monitor_without_running(tmp_path: Path) -> None:
    """``skip_finished=true``: a folder holding metrics.json is a finished job (a rerun of a sweep resumes)."""
    from omegaconf import OmegaConf

    from recsys_gnn.job import guarded

    calls: list[str] = []

    def job(cfg) -> float:
        calls.append(cfg.paths.output_dir)
        return 0.25

    cfg = OmegaConf.create(
        {"paths": {"output_dir": str(tmp_path)}, "monitor": "val/ndcg@10", "skip_finished": True}
    )
    assert guarded(cfg, job) == 0.25 and len(calls) == 1  # no metrics.json yet: the job runs
    (tmp_path / "metrics.json").write_text('{"val/ndcg@10": 0.5, "test/ndcg@10": 0.4}')
    assert guarded(cfg, job) == 0.5 and len(calls) == 1  # finished: skipped, the recorded value returned
    cfg.skip_finished = False
    assert guarded(cfg, job) == 0.25 and len(calls) == 2  # the default runs every job again
