"""Splitters: determinism, disjoint/complete assignment, cold items/users kept out of train, temporal order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError, SchemaError
from recsys_gnn.data.splits import (
    TEST,
    TEST_HISTORY,
    TRAIN,
    VAL,
    VAL_HISTORY,
    ColdItemSplit,
    ColdUserSplit,
    OfficialSplit,
    RandomSplit,
    TemporalSplit,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "split"


def make_frame(n_users: int = 60, n_items: int = 80, seed: int = 0, timestamps: bool = True) -> pd.DataFrame:
    """Unique (uidx, iidx) rows, 5..25 per user, sorted like preprocess() sorts them."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=int(rng.integers(5, 26)), replace=False):
            rows.append((u, int(i)))
    pairs = np.array(sorted(rows), dtype=np.int64)
    n = len(pairs)
    return pd.DataFrame(
        {
            "uidx": pairs[:, 0],
            "iidx": pairs[:, 1],
            "rating": np.full(n, np.nan),
            "weight": np.ones(n),
            "timestamp": rng.integers(0, 10**6, n) if timestamps else np.full(n, -1, dtype=np.int64),
        }
    )


ALL_SPLITTERS = [
    RandomSplit(),
    TemporalSplit(),
    TemporalSplit(mode="ratio"),
    ColdItemSplit(),
    ColdUserSplit(),
    ColdUserSplit(n_history=3),
]


@pytest.mark.parametrize("splitter", ALL_SPLITTERS, ids=lambda s: f"{s.name}-{s.params()}")
def test_every_row_gets_one_valid_code_and_every_part_is_used(splitter) -> None:
    frame = make_frame()
    res = splitter(frame, 60, 80)
    assert res.assignment.shape == (len(frame),)
    assert set(np.unique(res.assignment)) <= {TRAIN, VAL, TEST, VAL_HISTORY, TEST_HISTORY}
    for code in (TRAIN, VAL, TEST):
        assert (res.assignment == code).any()


@pytest.mark.parametrize("cls", [RandomSplit, ColdItemSplit, ColdUserSplit])
def test_seeded_splits_are_deterministic_and_depend_on_seed(cls) -> None:
    frame = make_frame()
    a = cls(seed=1)(frame, 60, 80)
    b = cls(seed=1)(frame, 60, 80)
    c = cls(seed=2)(frame, 60, 80)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert (a.assignment != c.assignment).any()


def test_random_split_per_user_quotas_and_short_users_stay_in_train() -> None:
    # user 0: 10 rows -> round(1.0)=1 val, 1 test, 8 train; user 1: 15 rows -> round(1.5)=2 val, 2 test;
    # user 2: 2 rows < min_train(1) + 2 -> all train and counted.
    uidx = np.repeat([0, 1, 2], [10, 15, 2])
    frame = pd.DataFrame(
        {"uidx": uidx, "iidx": np.arange(len(uidx)), "rating": np.nan, "weight": 1.0, "timestamp": -1}
    )
    res = RandomSplit()(frame, 3, len(uidx))
    got = pd.crosstab(uidx, res.assignment)
    assert got.loc[0].tolist() == [8, 1, 1]
    assert got.loc[1].tolist() == [11, 2, 2]
    assert got.loc[2].tolist() == [2, 0, 0]
    assert res.stats["users_kept_in_train_too_few_interactions"] == 1


def test_random_split_min_train_shrinks_val_before_test() -> None:
    # 4 rows, ratios 0.25/0.25/0.5 -> val 1, test 2, but min_train=2 leaves room for 2: val keeps its minimum
    # of 1, so test shrinks to 1 as well.
    frame = pd.DataFrame(
        {"uidx": [0] * 4, "iidx": range(4), "rating": np.nan, "weight": 1.0, "timestamp": -1}
    )
    res = RandomSplit(ratios=(0.25, 0.25, 0.5), min_train=2)(frame, 1, 4)
    assert np.bincount(res.assignment, minlength=3).tolist() == [2, 1, 1]


def test_bad_ratios_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ratios"):
        RandomSplit(ratios=(0.8, 0.1))
    with pytest.raises(ConfigError, match="ratios"):
        RandomSplit(ratios=(0.5, 0.1, 0.1))


def test_temporal_leave_last_out_respects_time_and_breaks_ties_by_item() -> None:
    frame = make_frame(seed=3)
    res = TemporalSplit()(frame, 60, 80)
    frame = frame.assign(code=res.assignment)
    for _, g in frame.groupby("uidx"):
        g = g.sort_values(["timestamp", "iidx"])
        assert g["code"].tolist() == [TRAIN] * (len(g) - 2) + [VAL, TEST]
    # all rows of one user at the same time: the highest item index is "last"
    tied = pd.DataFrame(
        {"uidx": [0] * 4, "iidx": [7, 3, 9, 1], "rating": np.nan, "weight": 1.0, "timestamp": 5}
    )
    codes = TemporalSplit()(tied, 1, 10).assignment
    assert dict(zip(tied["iidx"], codes, strict=True)) == {9: TEST, 7: VAL, 3: TRAIN, 1: TRAIN}


def test_temporal_ratio_puts_latest_rows_in_test() -> None:
    frame = make_frame(seed=4)
    frame = frame.assign(code=TemporalSplit(mode="ratio")(frame, 60, 80).assignment)
    for _, g in frame.groupby("uidx"):
        ts = g.set_index("code")["timestamp"]
        assert ts.loc[[TRAIN]].max() <= ts.loc[[VAL]].min() <= ts.loc[[VAL]].max() <= ts.loc[[TEST]].min()


def test_temporal_without_timestamps_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timestamp"):
        TemporalSplit()(make_frame(timestamps=False), 60, 80)
    with pytest.raises(ConfigError, match="mode"):
        TemporalSplit(mode="global")


def test_cold_items_never_in_train_and_split_between_val_and_test() -> None:
    frame = make_frame()
    res = ColdItemSplit(frac=0.25)(frame, 60, 80)
    assert res.cold_items is not None and res.cold_items.shape == (80,)
    assert res.cold_items.sum() == round(0.25 * frame["iidx"].nunique())
    cold_row = res.cold_items[frame["iidx"].to_numpy()]
    assert not (cold_row & (res.assignment == TRAIN)).any()
    cold_codes = res.assignment[cold_row]
    n_val = (cold_codes == VAL).sum()
    assert n_val == np.floor(0.5 * len(cold_codes) + 0.5)
    assert set(np.unique(cold_codes)) == {VAL, TEST}
    # every warm item's row that is not in train belongs to a user who also has warm train rows
    warm = ~cold_row
    assert (res.assignment[warm] == TRAIN).sum() > 0.7 * warm.sum()


def test_cold_item_val_fraction_zero_sends_all_cold_rows_to_test() -> None:
    frame = make_frame()
    res = ColdItemSplit(cold_val_frac=0.0)(frame, 60, 80)
    assert (res.assignment[res.cold_items[frame["iidx"].to_numpy()]] == TEST).all()


def test_cold_users_never_in_train_and_history_is_earliest() -> None:
    frame = make_frame()
    res = ColdUserSplit(frac=0.2, history=0.5)(frame, 60, 80)
    assert res.cold_users is not None and res.cold_users.sum() == 12
    is_cold = res.cold_users[frame["uidx"].to_numpy()]
    assert not (is_cold & (res.assignment == TRAIN)).any()
    assert not (~is_cold & np.isin(res.assignment, (VAL_HISTORY, TEST_HISTORY))).any()
    frame = frame.assign(code=res.assignment)
    for u, g in frame[is_cold].groupby("uidx"):
        codes = set(g["code"])
        assert codes in ({VAL, VAL_HISTORY}, {TEST, TEST_HISTORY}), (u, codes)
        hist = g["code"].isin([VAL_HISTORY, TEST_HISTORY])
        assert hist.sum() == np.floor(0.5 * len(g) + 0.5)
        key = list(zip(g["timestamp"], g["iidx"], strict=True))
        assert max(k for k, h in zip(key, hist, strict=True) if h) < min(
            k for k, h in zip(key, hist, strict=True) if not h
        )
    assert res.stats["cold_users_at_val"] == 6


def test_cold_users_fixed_history_size_and_random_history_without_timestamps() -> None:
    frame = make_frame(timestamps=False)
    res = ColdUserSplit(n_history=3)(frame, 60, 80)
    hist = np.isin(res.assignment, (VAL_HISTORY, TEST_HISTORY))
    per_user = pd.Series(hist).groupby(frame["uidx"]).sum()
    assert set(per_user[res.cold_users]) == {3}
    assert res.stats["history_by_time"] == 0


def test_official_split_uses_labels_and_carves_val() -> None:
    frame = make_frame()
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(len(frame)) < 0.8, "train", "test")
    res = OfficialSplit(val_from_train=0.1)(frame.assign(split=labels), 60, 80)
    assert (res.assignment[labels == "test"] == TEST).all()
    assert set(np.unique(res.assignment[labels == "train"])) == {TRAIN, VAL}
    assert res.stats["val_carved_from_train"] == (res.assignment == VAL).sum() > 0
    with_val = np.where(labels == "test", "val", labels)
    with_val[:5] = "test"
    res = OfficialSplit()(frame.assign(split=with_val), 60, 80)
    np.testing.assert_array_equal(res.assignment, pd.Series(with_val).map({"train": 0, "val": 1, "test": 2}))


def test_official_split_errors() -> None:
    with pytest.raises(ConfigError, match="no official split"):
        OfficialSplit()(make_frame(), 60, 80)
    frame = make_frame().assign(split="dev")
    with pytest.raises(SchemaError, match="dev"):
        OfficialSplit()(frame, 60, 80)


@pytest.mark.parametrize("name", ["random", "temporal", "cold_items", "cold_users", "official"])
def test_yaml_configs_instantiate_and_round_trip(name: str) -> None:
    # the yaml files interpolate the run's ${seed}: load them under a root that has one
    cfg = OmegaConf.merge({"seed": 7}, {"split": OmegaConf.load(CONF / f"{name}.yaml")}).split
    splitter = instantiate(cfg)
    assert splitter.name == name
    params = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "_target_"}
    # params() reports what the run used; every yaml key is a constructor parameter
    again = type(splitter)(**params)
    assert again.params() == splitter.params()


def test_auto_split_uses_official_labels_when_present_else_random() -> None:
    from recsys_gnn.data.splits import AutoSplit, OfficialSplit, RandomSplit

    frame = make_frame()
    auto = AutoSplit(seed=3)
    res = auto(frame, 60, 80)
    assert auto.name == "auto:random"
    np.testing.assert_array_equal(res.assignment, RandomSplit(seed=3)(frame, 60, 80).assignment)

    labelled = frame.copy()
    rng = np.random.default_rng(0)
    labelled["split"] = rng.choice(["train", "train", "train", "val", "test"], size=len(frame))
    auto = AutoSplit(seed=3)
    res = auto(labelled, 60, 80)
    assert auto.name == "auto:official"
    np.testing.assert_array_equal(res.assignment, OfficialSplit(seed=3)(labelled, 60, 80).assignment)


@pytest.mark.parametrize("name", ["random", "cold_items", "cold_users", "official", "auto"])
def test_every_seeded_split_follows_the_run_seed(name: str) -> None:
    cfg = OmegaConf.merge({"seed": 11}, {"split": OmegaConf.load(CONF / f"{name}.yaml")})
    assert instantiate(cfg.split).params()["seed"] == 11


def _with_official_labels(frame: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return frame.assign(split=rng.choice(["train", "train", "train", "val", "test"], size=len(frame)))


@pytest.mark.parametrize("cls", [ColdItemSplit, ColdUserSplit])
def test_cold_splits_refuse_to_replace_an_official_split_unless_asked(cls) -> None:
    labelled = _with_official_labels(make_frame())
    with pytest.raises(
        ConfigError, match=rf"split={cls.name} would replace .*split.replace_official=true"
    ) as err:
        cls()(labelled, 60, 80)
    assert "\n" not in str(err.value)
    res = cls(replace_official=True)(labelled, 60, 80)
    assert res.stats["official_split_replaced"] == 1
    assert cls(replace_official=True).params()["replace_official"] is True
    # without official labels nothing changes, and the stats do not mention them
    assert "official_split_replaced" not in cls()(make_frame(), 60, 80).stats


def test_stats_record_whether_an_official_split_was_used() -> None:
    from recsys_gnn.data.splits import AutoSplit

    labelled = _with_official_labels(make_frame())
    assert AutoSplit()(labelled, 60, 80).stats["official_split_replaced"] == 0
    assert OfficialSplit()(labelled, 60, 80).stats["official_split_replaced"] == 0
    assert RandomSplit()(labelled, 60, 80).stats["official_split_replaced"] == 1
