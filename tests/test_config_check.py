"""Hyper-parameter checks (recsys_gnn.config_check): each bad value fails when train() starts, before any data is
read, with a message naming its config key."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_gnn.config_check import check_config, config_problems
from recsys_gnn.data.errors import ConfigError

# (override, key the message must name); one per rule family, ranking task
BAD_RANKING = [
    ("optimizer.lr=-0.01", "optimizer.lr"),
    ("optimizer.lr=0", "optimizer.lr"),
    ("optimizer.lr=fast", "optimizer.lr"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
    ("compress.dim=0", "compress.dim"),
    ("compress.dim=16.5", "compress.dim"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.eval_batch_size=-4", "data.eval_batch_size"),
    ("data.num_negatives=0", "data.num_negatives"),
    ("data.num_workers=-1", "data.num_workers"),
    ("module.temperature=0", "module.temperature"),
    ("module.loss=hinge", "module.loss"),
    ("module.ks=[]", "module.ks"),
    ("module.ks=[5,0]", "module.ks"),
    ("module.ks=[10,10]", "module.ks"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience"),
    ("seed=-1", "seed"),
    ("seed=1.5", "seed"),
    ("split.ratios=[0.8,0.1]", "split.ratios"),
    ("split.ratios=[0.5,0.1,0.1]", "split.ratios"),
    ("split.ratios=[0,0.5,0.5]", "split.ratios"),
    ("split.val_from_train=1.0", "split.val_from_train"),
    ("dataset.kcore=-2", "dataset.kcore"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.cold_dropout=-0.1", "model.cold_dropout"),
    ("model.weight_decay_emb=-1", "model.weight_decay_emb"),
    ("gnn.num_layers=0", "gnn.num_layers"),
]
BAD_WITH_GROUP = [
    (["split=cold_items", "split.frac=0"], "split.frac"),
    (["split=cold_items", "split.frac=1.5"], "split.frac"),
    (["split=cold_items", "split.cold_val_frac=1.2"], "split.cold_val_frac"),
    (["split=cold_items", "split.replace_official=maybe"], "split.replace_official"),
    (["split=cold_users", "split.history=0"], "split.history"),
    (["split=cold_users", "split.n_history=0"], "split.n_history"),
    (["split=random", "split.min_train=0"], "split.min_train"),
    (["split=random", "split.seed=-3"], "split.seed"),
    (["split=temporal", "split.mode=last"], "split.mode"),
    (["gnn=gcn", "gnn.dropout=1.5"], "gnn.dropout"),
    (["gnn=gat", "gnn.temperature=0"], "gnn.temperature"),
    (["gnn=gat", "gnn.attn_dropout=-0.5"], "gnn.attn_dropout"),
    (["gnn=gat", "gnn.num_heads=0"], "gnn.num_heads"),
    (["model=lightgcn_id", "~gnn", "~graph", "model.num_layers=0"], "model.num_layers"),
    (["model=lm_finetune", "model.temperature=-1"], "model.temperature"),
]
BAD_RATING = [
    ("rating.lr=0", "rating.lr"),
    ("rating.weight_decay=-1", "rating.weight_decay"),
    ("rating.epochs=0", "rating.epochs"),
    ("rating.patience=-1", "rating.patience"),
    ("rating.batch_size=0", "rating.batch_size"),
    ("rating.eval_batch_size=0", "rating.eval_batch_size"),
    ("rating.head.dropout=1", "rating.head.dropout"),
    ("rating.head.hidden=0", "rating.head.hidden"),
    ("rating.scale=[5,1]", "rating.scale"),
    ("rating.objective=ordinal", "rating.objective"),
    ("rating.optimizer=rmsprop", "rating.optimizer"),
    ("rating.mf.dim=0", "rating.mf.dim"),
]


@pytest.mark.parametrize(("override", "key"), BAD_RANKING, ids=[o for o, _ in BAD_RANKING])
def test_each_bad_value_names_its_key(make_cfg, override: str, key: str) -> None:
    cfg = make_cfg([override])
    with pytest.raises(ConfigError, match=rf"invalid config: {key.replace('.', '[.]')}=") as err:
        check_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("overrides", "key"), BAD_WITH_GROUP, ids=[k for _, k in BAD_WITH_GROUP])
def test_bad_values_of_optional_groups_name_their_key(make_cfg, overrides: list[str], key: str) -> None:
    problems = config_problems(make_cfg(overrides))
    assert [p.split("=", 1)[0] for p in problems] == [key]


@pytest.mark.parametrize(("override", "key"), BAD_RATING, ids=[o for o, _ in BAD_RATING])
def test_rating_settings_are_checked_for_task_rating(make_cfg, override: str, key: str) -> None:
    problems = config_problems(make_cfg(["task=rating", override]))
    assert [p.split("=", 1)[0] for p in problems] == [key]


def test_each_task_checks_its_own_keys(make_cfg) -> None:
    assert config_problems(make_cfg(["task=rating", "data.num_negatives=0", "optimizer.lr=-1"])) == []
    assert config_problems(make_cfg(["rating.lr=0", "rating.epochs=0"])) == []


def test_all_problems_are_reported_at_once(make_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(["optimizer.lr=-0.01", "compress.dim=0", "module.ks=[0]"]))
    message = str(err.value)
    for key in ("optimizer.lr=-0.01", "compress.dim=0", "module.ks=[0]"):
        assert key in message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["debug=fast"],
        ["split=cold_items"],
        ["split=cold_users", "split.n_history=2"],
        ["split=temporal"],
        ["split=official"],
        ["gnn=gat"],
        ["gnn=sage"],
        ["model=mf", "~gnn", "~graph"],
        ["model=lightgcn_id", "~gnn", "~graph"],
        ["model=pop", "~gnn", "~graph", "~optimizer"],
        ["model=distill"],
        ["model=lm_finetune"],
        ["hparams_search=compressor_optuna"],
        ["experiment=rating_ml100k"],
        ["trainer.max_epochs=-1"],
        ["compress=int8"],
    ],
)
def test_shipped_configs_pass(make_cfg, overrides: list[str]) -> None:
    assert config_problems(make_cfg(overrides)) == []


def test_a_bad_value_fails_before_any_data_is_read(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recsys_gnn.pipeline as pipeline
    from recsys_gnn import job

    monkeypatch.setenv("RECSYS_GNN_RAW", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(tmp_path / "no-cache"))

    def no_reading(cfg):
        raise AssertionError("data was read before the config was checked")

    monkeypatch.setattr(job, "load_data", no_reading)  # every variant reads through the job skeleton
    with pytest.raises(ConfigError, match="optimizer.lr=-0.01"):
        pipeline.train(make_cfg(["optimizer.lr=-0.01"]))
    with pytest.raises(ConfigError, match="compress.dim=0"):
        pipeline.train(make_cfg(["compress.dim=0"]))
    with pytest.raises(ConfigError, match="rating.lr=-1"):
        pipeline.train(make_cfg(["task=rating", "rating.lr=-1"]))
    assert not (tmp_path / "no-cache").exists()
