"""preprocess(): filtering order and counts, k-core, id remapping, rating task, impressions, empty splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_gnn.data.errors import ConfigError, EmptySplitError
from recsys_gnn.data.preprocess import preprocess
from recsys_gnn.data.schema import DropReport, RawDataset, make_interactions
from recsys_gnn.data.splits import ColdItemSplit, ColdUserSplit, OfficialSplit, RandomSplit

SRC = "preprocess: "


def items_table(ids) -> pd.DataFrame:
    ids = [str(i) for i in ids]
    return pd.DataFrame(
        {"item": ids, "title": [f"Title {i}" for i in ids], "text": [f"text of {i}" for i in ids]}
    )


def random_raw(n: int = 2000, n_users: int = 80, n_items: int = 120, seed: int = 0, **kw) -> RawDataset:
    rng = np.random.default_rng(seed)
    inter = make_interactions(
        rng.integers(0, n_users, n),
        rng.integers(0, n_items, n),
        rating=rng.integers(1, 6, n).astype(float),
        timestamp=rng.integers(0, 10**6, n),
    )
    return RawDataset("toy", inter, items_table(range(n_items)), has_ratings=True, rating_scale=(1, 5), **kw)


def test_outputs_are_consistent_remapped_and_aligned() -> None:
    raw = random_raw()
    data = preprocess(raw, RandomSplit(), implicit_threshold=4, kcore=2)
    all_pairs = np.concatenate([data.train, data.val, data.test])
    # disjoint and covering: every kept (user, item) appears exactly once
    assert len(np.unique(all_pairs, axis=0)) == len(all_pairs) == data.protocol["counts"]["interactions"]
    assert set(all_pairs[:, 0]) == set(range(data.n_users))
    assert set(all_pairs[:, 1]) == set(range(data.n_items))
    assert list(data.item_ids) == sorted(data.item_ids) and list(data.user_ids) == sorted(data.user_ids)
    assert data.item_texts == [f"text of {i}" for i in data.item_ids]
    assert data.item_titles == [f"Title {i}" for i in data.item_ids]
    assert data.train_weight.shape == (len(data.train),) and data.train_weight.dtype == np.float32
    # every kept pair maps back to a raw interaction rated >= 4
    raw_pairs = raw.interactions[raw.interactions["rating"] >= 4]
    kept = set(zip(raw_pairs["user"], raw_pairs["item"], strict=True))
    assert all((data.user_ids[u], data.item_ids[i]) in kept for u, i in all_pairs)
    p = data.protocol
    assert (
        p["dataset"] == "toy"
        and p["task"] == "ranking"
        and p["implicit_threshold"] == 4.0
        and p["kcore"] == 2
    )
    assert p["split"]["name"] == "random" and p["split"]["params"]["ratios"] == [0.8, 0.1, 0.1]
    assert p["counts"]["train"]["interactions"] == len(data.train)
    assert data.train_rating is None and data.val_history is None


def test_result_does_not_depend_on_raw_row_order() -> None:
    raw = random_raw()
    shuffled = RawDataset(
        "toy", raw.interactions.sample(frac=1.0, random_state=1), raw.items, has_ratings=True
    )
    a = preprocess(raw, RandomSplit(), implicit_threshold=3)
    b = preprocess(shuffled, RandomSplit(), implicit_threshold=3)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_threshold_unknown_items_and_duplicates_are_counted() -> None:
    # 12 users x items 0..5 rated 5 (official split: item 4 val, item 5 test, the rest train); plus 3 rows rated
    # 2 (below 4), 2 rows of item "ghost" (unknown), and user u0 rates item 0 again later with 4 and weight 2
    # (duplicate: the latest row's rating and split label are kept, weights summed).
    users, items, ratings, weights, ts, split = [], [], [], [], [], []
    for u in range(12):
        for i in range(6):
            (
                users.append(f"u{u}"),
                items.append(i),
                ratings.append(5.0),
                weights.append(1.0),
                ts.append(10 * i),
            )
            split.append({4: "val", 5: "test"}.get(i, "train" if u else "test"))
    users += ["u1", "u2", "u3", "u4", "u5", "u0"]
    items += [0, 1, 2, "ghost", "ghost", 0]
    ratings += [2.0, 2.0, 2.0, 5.0, 5.0, 4.0]
    weights += [1.0, 1.0, 1.0, 1.0, 1.0, 2.0]
    ts += [100, 100, 100, 100, 100, 1000]
    split += ["train"] * 6
    inter = make_interactions(users, items, rating=ratings, weight=weights, timestamp=ts)
    report = DropReport()
    report.add("bad line", 7, "ratings.csv")
    raw = RawDataset(
        "toy", inter, items_table(range(6)), has_ratings=True, report=report, split=pd.Series(split)
    )
    data = preprocess(raw, OfficialSplit(), implicit_threshold=4, task="rating")
    # task=rating ignores the threshold: the three 2-star rows stay (and collapse with the 5-star rows)
    assert data.drops[SRC + "interaction references unknown item"] == 2
    assert data.drops["ratings.csv: bad line"] == 7
    assert data.drops[SRC + "duplicate (user, item) pair collapsed (latest kept, weights summed)"] == 4
    assert data.protocol["implicit_threshold"] is None
    u0, i0 = list(data.user_ids).index("u0"), list(data.item_ids).index("0")
    u1 = list(data.user_ids).index("u1")
    assert data.train_rating[(data.train == [u0, i0]).all(1)].tolist() == [
        4.0
    ]  # latest of 5 (t=0), 4 (t=1000)
    assert data.train_rating[(data.train == [u1, i0]).all(1)].tolist() == [
        2.0
    ]  # latest of 5 (t=0), 2 (t=100)

    data = preprocess(raw, OfficialSplit(), implicit_threshold=4)
    assert data.drops[SRC + "rating below implicit_threshold=4"] == 3
    assert data.drops[SRC + "duplicate (user, item) pair collapsed (latest kept, weights summed)"] == 1
    pairs = np.concatenate([data.train, data.val, data.test])
    assert len(pairs) == 72
    u0, i0 = list(data.user_ids).index("u0"), list(data.item_ids).index("0")
    # the collapsed pair takes the latest row's label (train) and carries the summed weight 1 + 2
    in_train = (data.train == [u0, i0]).all(1)
    assert in_train.sum() == 1 and data.train_weight[in_train][0] == 3.0
    assert set(data.train_weight[~in_train]) == {1.0}


def test_rating_task_keeps_ratings_aligned_with_pairs() -> None:
    raw = random_raw()
    data = preprocess(raw, RandomSplit(), task="rating")
    latest = raw.interactions.sort_values("timestamp", kind="stable").drop_duplicates(
        ["user", "item"], keep="last"
    )
    lookup = latest.set_index(["user", "item"])["rating"]
    for name in ("train", "val", "test"):
        pairs, ratings = getattr(data, name), getattr(data, f"{name}_rating")
        assert ratings.shape == (len(pairs),)
        expect = lookup.loc[list(zip(data.user_ids[pairs[:, 0]], data.item_ids[pairs[:, 1]], strict=True))]
        np.testing.assert_array_equal(ratings, expect.to_numpy(np.float32))


def test_kcore_hand_case_counts_every_pass() -> None:
    # k=2. Rows: A-x A-y B-x B-y C-x C-z D-z E-x E-y
    # pass 1 users: D has 1 row -> drop D-z (1). items: z now only C-z -> drop (1).
    # pass 2 users: C has only C-x -> drop (1). items: x (A,B,E) and y (A,B,E) fine.
    # pass 3: nothing dropped -> users A,B,E; items x,y.
    users = ["A", "A", "B", "B", "C", "C", "D", "E", "E"]
    items = ["x", "y", "x", "y", "x", "z", "z", "x", "y"]
    split = ["train", "val", "train", "test", "train", "train", "train", "train", "test"]
    raw = RawDataset("hand", make_interactions(users, items), items_table("xyz"), split=pd.Series(split))
    data = preprocess(raw, OfficialSplit(), kcore=2)
    assert list(data.user_ids) == ["A", "B", "E"] and list(data.item_ids) == ["x", "y"]
    assert data.drops == {
        SRC + "2-core pass 1: user has < 2 interactions": 1,
        SRC + "2-core pass 1: item has < 2 interactions": 1,
        SRC + "2-core pass 2: user has < 2 interactions": 1,
    }
    assert data.train.tolist() == [[0, 0], [1, 0], [2, 0]]
    assert data.val.tolist() == [[0, 1]] and data.test.tolist() == [[1, 1], [2, 1]]


def test_items_only_in_test_stay_in_catalogue_for_official_split() -> None:
    users = ["a", "a", "b", "b", "c"]
    items = ["1", "2", "1", "3", "4"]
    split = pd.Series(["train", "val", "train", "test", "test"])
    raw = RawDataset("off", make_interactions(users, items), items_table(range(1, 6)), split=split)
    data = preprocess(raw, OfficialSplit())
    assert list(data.item_ids) == ["1", "2", "3", "4"]  # "5" has no interaction: not in the catalogue
    assert data.protocol["counts"]["items_without_train"] == 3
    assert data.protocol["counts"]["users_without_train"] == 1


def test_rating_task_and_threshold_need_explicit_ratings() -> None:
    raw = RawDataset("lastfm", make_interactions(["u"] * 3, ["1", "2", "3"]), items_table([1, 2, 3]))
    with pytest.raises(ConfigError, match=r"task=rating needs explicit ratings; dataset lastfm has none"):
        preprocess(raw, RandomSplit(), task="rating")
    with pytest.raises(ConfigError, match="implicit_threshold=4.0 needs explicit ratings"):
        preprocess(raw, RandomSplit(), implicit_threshold=4.0)
    with pytest.raises(ConfigError, match="unknown task"):
        preprocess(raw, RandomSplit(), task="ctr")


def test_empty_splits_name_split_dataset_and_filtering() -> None:
    # every user has 2 interactions: the random split keeps them all in train, so val is empty
    raw = RawDataset(
        "tiny", make_interactions(["a", "a", "b", "b"], ["1", "2", "1", "2"]), items_table([1, 2])
    )
    with pytest.raises(EmptySplitError, match=r"tiny: the val split is empty .*kcore=0.*split=random"):
        preprocess(raw, RandomSplit())
    # a threshold above every rating empties everything
    rated = RawDataset(
        "rated",
        make_interactions(["a", "b"], ["1", "2"], rating=[1.0, 2.0]),
        items_table([1, 2]),
        has_ratings=True,
    )
    with pytest.raises(EmptySplitError, match=r"rated: no interactions left .*implicit_threshold=4"):
        preprocess(rated, RandomSplit(), implicit_threshold=4)
    raw = random_raw(n=300)
    with pytest.raises(EmptySplitError, match="50-core"):
        preprocess(raw, RandomSplit(), kcore=50)


def test_cold_splits_fill_masks_and_histories() -> None:
    raw = random_raw()
    data = preprocess(raw, ColdItemSplit(), implicit_threshold=3)
    assert data.cold_items is not None and data.cold_items.shape == (data.n_items,)
    assert not data.cold_items[data.train[:, 1]].any()
    assert data.protocol["counts"]["cold_items"] == data.cold_items.sum()
    data = preprocess(raw, ColdUserSplit(), implicit_threshold=3)
    assert data.cold_users is not None and not data.cold_users[data.train[:, 0]].any()
    assert data.cold_users[data.val_history[:, 0]].all() and data.cold_users[data.test_history[:, 0]].all()
    # a cold user's history is masked at evaluation and disjoint from its targets
    known = {tuple(p) for p in data.known_for("test")}
    assert not any(tuple(p) in known for p in data.test)


def test_impressions_are_remapped_and_unknowns_counted() -> None:
    inter = make_interactions(["u1", "u1", "u2", "u2", "u3", "u3"], ["n1", "n2", "n1", "n3", "n2", "n3"])
    split = pd.Series(["train", "val", "train", "test", "train", "train"])
    imps = pd.DataFrame(
        {
            "impression_id": ["i1", "i2", "i3", "i4"],
            "user": ["u1", "u9", "u2", "u3"],
            "candidates": [["n1", "n9", "n3"], ["n1"], ["n8"], ["n2", "n3"]],
            "labels": [[0, 1, 1], [1], [1], [1, 0]],
            "split": ["val", "test", "test", "test"],
        }
    )
    # n8 has text and is shown in an impression but never clicked: it joins the catalogue (it competes in
    # impressions and full ranking); n9 has no text, so it cannot be represented and is dropped, counted.
    raw = RawDataset("mind", inter, items_table(["n1", "n2", "n3", "n8"]), split=split, impressions=imps)
    data = preprocess(raw, OfficialSplit())
    assert list(data.item_ids) == ["n1", "n2", "n3", "n8"]
    assert [d["impression_id"] for d in data.impressions] == ["i1", "i3", "i4"]
    first, mid, last = data.impressions
    assert first["user"] == 0 and first["split"] == "val"
    assert first["candidates"].tolist() == [0, 2] and first["labels"].tolist() == [0, 1]
    assert first["candidates"].dtype == np.int64 and first["labels"].dtype == np.int64
    assert mid["user"] == 1 and mid["candidates"].tolist() == [3] and mid["labels"].tolist() == [1]
    assert last["user"] == 2 and last["candidates"].tolist() == [1, 2] and last["labels"].tolist() == [1, 0]
    assert data.drops[SRC + "impression user not in catalogue (impression dropped)"] == 1
    assert data.drops[SRC + "impression candidate not in item catalogue"] == 1  # n9 in i1
    assert SRC + "impression with no candidate left in catalogue (impression dropped)" not in data.drops
