"""Turn a :class:`RawDataset` into an :class:`InteractionData`: filter, remap ids to contiguous ints, split.

Order of operations (each drop is counted in the :class:`DropReport` under source ``preprocess``):

1. drop interactions whose item has no row in ``raw.items`` (and duplicate rows of ``raw.items``);
2. ``task="ranking"``: keep ``rating >= implicit_threshold`` when a threshold is given;
   ``task="rating"``: keep rows with an explicit rating;
3. collapse duplicate ``(user, item)`` pairs: the latest row (by timestamp; by file order when timestamps tie or
   are missing) keeps its rating, timestamp and official split label, and the weights of all duplicates are
   summed (repeated plays/clicks mean a stronger implicit signal);
4. iterative k-core: drop users, then items, with fewer than ``kcore`` interactions until none is left;
5. remap users and items to ``0..n-1`` in sorted order of their original ids (deterministic). The item
   catalogue is every item left in the interactions, including items that only occur in val/test
   (official and cold splits);
6. split with the given :class:`~recsys_gnn.data.splits.Splitter` and check that train/val/test are non-empty.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, EmptySplitError, SchemaError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.data.schema import INTERACTION_COLUMNS, DropReport, RawDataset
from recsys_gnn.data.splits import CODE_NAMES, TEST, TEST_HISTORY, TRAIN, VAL, VAL_HISTORY, Splitter

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("ranking", "rating")
SOURCE = "preprocess"
DUPLICATE_POLICY = "keep latest rating/timestamp/split label, sum weights"


def preprocess(
    raw: RawDataset,
    split: Splitter,
    *,
    implicit_threshold: float | None = None,
    kcore: int = 0,
    task: str = "ranking",
) -> InteractionData:
    """Filter, remap and split ``raw`` (see the module docstring for the order of steps).

    Args:
        raw: the dataset as read.
        split: splitter instance (``conf/split/*.yaml``).
        implicit_threshold: ``task="ranking"``: keep interactions with ``rating >= implicit_threshold``.
            Ignored with a warning for ``task="rating"`` (protocol records None), since dataset configs set it.
        kcore: minimum interactions per user and per item (0 or 1: no k-core).
        task: "ranking" (implicit feedback, full ranking) or "rating" (explicit rating prediction).

    Returns:
        The split dataset with ``protocol`` and ``drops`` filled.

    Raises:
        ConfigError: unknown task, negative kcore, a threshold or task=rating on a dataset without ratings.
        EmptySplitError: filtering left no interactions, or a split came out empty.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    if int(kcore) < 0:
        raise ConfigError(f"kcore must be >= 0; got {kcore}")
    kcore = int(kcore)
    report = DropReport()
    filters: list[str] = []

    df = raw.interactions[list(INTERACTION_COLUMNS)].copy()
    if raw.split is not None:
        df["split"] = raw.split.astype(str).to_numpy()
    items = _unique_items(raw, report)

    known = df["item"].isin(items.index)
    report.add("interaction references unknown item", int((~known).sum()), SOURCE)
    df = df[known]
    filters.append("unknown-item drop")
    _require_rows(df, raw.name, filters)

    df, implicit_threshold = _filter_by_task(df, raw, task, implicit_threshold, report, filters)
    df = _collapse_duplicates(df, report)
    if kcore > 1:
        df = _kcore(df, kcore, report)
        filters.append(f"{kcore}-core")
        _require_rows(df, raw.name, filters)

    user_ids = np.sort(df["user"].unique()).astype(object)
    item_ids = np.sort(df["item"].unique()).astype(object)
    if raw.impressions is not None:
        # News shown but never clicked still compete in impressions and full ranking: keep them (with text).
        shown = pd.unique(
            np.concatenate([np.asarray(c, dtype=object) for c in raw.impressions["candidates"]])
        )
        extra = np.setdiff1d(pd.Index(shown).intersection(items.index).to_numpy(object), item_ids)
        if len(extra):
            log.info("%s: %d items only shown in impressions added to the catalogue", raw.name, len(extra))
            item_ids = np.sort(np.concatenate([item_ids, extra])).astype(object)
    frame = pd.DataFrame(
        {
            "uidx": pd.Index(user_ids).get_indexer(df["user"]).astype(np.int64),
            "iidx": pd.Index(item_ids).get_indexer(df["item"]).astype(np.int64),
            "rating": df["rating"].to_numpy(np.float64),
            "weight": df["weight"].to_numpy(np.float64),
            "timestamp": df["timestamp"].to_numpy(np.int64),
        }
    )
    if "split" in df.columns:
        frame["split"] = df["split"].to_numpy()
    # Splitters draw random numbers in row order: a canonical order makes them independent of file order.
    frame = frame.sort_values(["uidx", "iidx"], kind="stable").reset_index(drop=True)
    n_users, n_items = len(user_ids), len(item_ids)

    result = split(frame, n_users, n_items)
    codes = result.assignment
    pairs = frame[["uidx", "iidx"]].to_numpy(np.int64)
    parts = {name: pairs[codes == code] for code, name in CODE_NAMES.items()}
    for name in ("train", "val", "test"):
        if len(parts[name]) == 0:
            raise EmptySplitError(
                f"{raw.name}: the {name} split is empty after filtering ({', '.join(filters)}; task={task}, "
                f"implicit_threshold={implicit_threshold}, kcore={kcore}) and split={split.name} "
                f"{split.params()}; {len(frame)} interactions of {n_users} users and {n_items} items were split"
            )

    ratings: dict[str, np.ndarray | None] = {"train": None, "val": None, "test": None}
    if task == "rating":
        r = frame["rating"].to_numpy(np.float32)
        ratings = {"train": r[codes == TRAIN], "val": r[codes == VAL], "test": r[codes == TEST]}

    impressions = None
    if raw.impressions is not None:
        impressions = _remap_impressions(raw.impressions, user_ids, item_ids, report)

    protocol = _protocol(
        raw.name, task, implicit_threshold, kcore, split, result.stats, parts, n_users, n_items
    )
    if result.cold_items is not None:
        protocol["counts"]["cold_items"] = int(result.cold_items.sum())
    if result.cold_users is not None:
        protocol["counts"]["cold_users"] = int(result.cold_users.sum())
    drops = DropReport()
    drops.merge(raw.report)
    drops.merge(report)
    texts = items.loc[item_ids]
    item_vectors = None
    if raw.item_vectors is not None:
        # The rows of raw.items that _unique_items keeps (first of a duplicated id), in catalogue order.
        ids = raw.items["item"].astype(str)
        kept = np.flatnonzero(~ids.duplicated(keep="first").to_numpy())
        rows = kept[pd.Index(ids.to_numpy()[kept]).get_indexer(item_ids)]
        item_vectors = np.asarray(raw.item_vectors, dtype=np.float32)[rows]
    has_history = result.cold_users is not None or bool(np.isin(codes, (VAL_HISTORY, TEST_HISTORY)).any())
    return InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_ids=user_ids,
        item_ids=item_ids,
        item_texts=texts["text"].astype(str).tolist(),
        item_titles=texts["title"].astype(str).tolist(),
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        train_weight=frame["weight"].to_numpy(np.float32)[codes == TRAIN],
        train_rating=ratings["train"],
        val_rating=ratings["val"],
        test_rating=ratings["test"],
        cold_items=result.cold_items,
        cold_users=result.cold_users,
        val_history=parts["val_history"] if has_history else None,
        test_history=parts["test_history"] if has_history else None,
        impressions=impressions,
        protocol=protocol,
        drops=drops.as_dict(),
        item_vectors=item_vectors,
    )


def _unique_items(raw: RawDataset, report: DropReport) -> pd.DataFrame:
    """``raw.items`` indexed by item id (str), first row kept per duplicated id."""
    items = raw.items.assign(item=raw.items["item"].astype(str))
    dup = items["item"].duplicated(keep="first")
    report.add("duplicate item row (first kept)", int(dup.sum()), SOURCE)
    return items[~dup].set_index("item")


def _require_rows(df: pd.DataFrame, dataset: str, filters: list[str]) -> None:
    if len(df) == 0:
        raise EmptySplitError(
            f"{dataset}: no interactions left (train/val/test all empty) after {', '.join(filters)}"
        )


def _filter_by_task(
    df: pd.DataFrame,
    raw: RawDataset,
    task: str,
    threshold: float | None,
    report: DropReport,
    filters: list[str],
) -> tuple[pd.DataFrame, float | None]:
    """Apply the rating filter of ``task``; returns the frame and the threshold actually applied."""
    rating = df["rating"].to_numpy(np.float64)
    if task == "rating":
        if not raw.has_ratings:
            raise ConfigError(
                f"task=rating needs explicit ratings; dataset {raw.name} has none (play counts / clicks)"
            )
        if threshold is not None:
            # The threshold binarises ratings for ranking; applying it here would bias the rating targets.
            log.warning(
                "task=rating ignores implicit_threshold=%s (all explicit ratings are kept)", threshold
            )
            threshold = None
        missing = np.isnan(rating)
        report.add("rating missing (task=rating)", int(missing.sum()), SOURCE)
        df = df[~missing]
        filters.append("rows without rating")
        _require_rows(df, raw.name, filters)
        return df, None
    if threshold is None:
        return df, None
    if not raw.has_ratings:
        raise ConfigError(
            f"implicit_threshold={threshold} needs explicit ratings; dataset {raw.name} has none "
            "(play counts / clicks): set implicit_threshold to null"
        )
    missing = np.isnan(rating)
    report.add("rating missing (cannot apply implicit_threshold)", int(missing.sum()), SOURCE)
    below = ~missing & (rating < threshold)
    report.add(f"rating below implicit_threshold={threshold}", int(below.sum()), SOURCE)
    df = df[~missing & ~below]
    filters.append(f"implicit_threshold={threshold}")
    _require_rows(df, raw.name, filters)
    return df, float(threshold)


def _collapse_duplicates(df: pd.DataFrame, report: DropReport) -> pd.DataFrame:
    """One row per (user, item): latest row's fields, summed weights (see module docstring)."""
    dup = df.duplicated(["user", "item"], keep=False)
    if not dup.any():
        return df
    # Stable sort keeps file order among equal timestamps, so "latest" is well defined without timestamps.
    df = df.sort_values("timestamp", kind="stable")
    weight = df.groupby(["user", "item"], sort=False)["weight"].transform("sum")
    earlier = df.duplicated(["user", "item"], keep="last")
    report.add(
        "duplicate (user, item) pair collapsed (latest kept, weights summed)", int(earlier.sum()), SOURCE
    )
    return df.assign(weight=weight)[~earlier]


def _kcore(df: pd.DataFrame, k: int, report: DropReport) -> pd.DataFrame:
    """Iteratively drop users, then items, with fewer than ``k`` interactions until every remaining one has k."""
    for p in itertools.count(1):
        users = df["user"].map(df["user"].value_counts())
        drop_u = users < k
        report.add(f"{k}-core pass {p}: user has < {k} interactions", int(drop_u.sum()), SOURCE)
        df = df[~drop_u]
        items = df["item"].map(df["item"].value_counts())
        drop_i = items < k
        report.add(f"{k}-core pass {p}: item has < {k} interactions", int(drop_i.sum()), SOURCE)
        df = df[~drop_i]
        # Dropping items can push users below k again, so stop only after a pass that dropped nothing.
        if not drop_u.any() and not drop_i.any():
            log.info("%d-core reached after %d pass(es): %d interactions", k, p, len(df))
            return df
    raise AssertionError("unreachable")


def _remap_impressions(
    imp: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, report: DropReport
) -> list[dict[str, Any]]:
    """Impressions with users/candidates (and the optional ``history`` column) as indices.

    Impressions of users outside the catalogue, candidates outside the catalogue and impressions left with no
    candidate are dropped and counted.
    """
    users = pd.Index(user_ids).get_indexer(imp["user"].astype(str))
    item_index = pd.Index(item_ids)
    out: list[dict[str, Any]] = []
    n_unknown_user = n_unknown_cand = n_empty = 0
    hist_cache: dict[tuple, np.ndarray] = {}
    rows = zip(
        imp["impression_id"].tolist(),
        users,
        imp["candidates"],
        imp["labels"],
        imp["split"].tolist(),
        imp["history"] if "history" in imp.columns else [None] * len(imp),
        strict=True,
    )
    for imp_id, user, cands, labels, split, history in rows:
        if len(cands) != len(labels):
            raise SchemaError(f"impression {imp_id!r}: {len(cands)} candidates but {len(labels)} labels")
        if user < 0:
            n_unknown_user += 1
            continue
        idx = item_index.get_indexer([str(c) for c in cands])
        keep = idx >= 0
        n_unknown_cand += int((~keep).sum())
        if not keep.any():
            n_empty += 1
            continue
        row = {
            "impression_id": imp_id,
            "user": int(user),
            "candidates": idx[keep].astype(np.int64),
            "labels": np.asarray(labels, dtype=np.int64)[keep],
            "split": str(split),
        }
        if history is not None:
            # the impression's click history as item indices (news outside the catalogue left out); a
            # user's rows repeat one history, so each distinct history is looked up once
            key = tuple(history)
            if key not in hist_cache:
                hist = item_index.get_indexer([str(h) for h in key])
                hist_cache[key] = hist[hist >= 0].astype(np.int64)
            row["history"] = hist_cache[key]
        out.append(row)
    report.add("impression user not in catalogue (impression dropped)", n_unknown_user, SOURCE)
    report.add("impression candidate not in item catalogue", n_unknown_cand, SOURCE)
    report.add("impression with no candidate left in catalogue (impression dropped)", n_empty, SOURCE)
    return out


def _protocol(
    dataset: str,
    task: str,
    threshold: float | None,
    kcore: int,
    split: Splitter,
    split_stats: dict[str, int],
    parts: dict[str, np.ndarray],
    n_users: int,
    n_items: int,
) -> dict[str, Any]:
    counts: dict[str, Any] = {"users": n_users, "items": n_items}
    for name, pairs in parts.items():
        counts[name] = {
            "interactions": len(pairs),
            "users": int(len(np.unique(pairs[:, 0]))),
            "items": int(len(np.unique(pairs[:, 1]))),
        }
    counts["items_without_train"] = n_items - counts["train"]["items"]
    counts["users_without_train"] = n_users - counts["train"]["users"]
    counts["interactions"] = int(sum(len(p) for p in parts.values()))
    return {
        "dataset": dataset,
        "task": task,
        "implicit_threshold": threshold,
        "kcore": kcore,
        "duplicates": DUPLICATE_POLICY,
        "split": {"name": split.name, "params": split.params(), "stats": dict(split_stats)},
        "counts": counts,
    }
