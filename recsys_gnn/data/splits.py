"""Train/val/test splitters, instantiated from ``conf/split/<name>.yaml`` (``_target_`` + parameters).

A splitter receives the filtered, id-remapped interaction frame (one row per unique ``(uidx, iidx)``, columns
``uidx, iidx, rating, weight, timestamp`` and ``split`` when the dataset ships an official split) and returns a
:class:`SplitResult`: one code per row (train, val, test, or the known history of a cold user at val/test) plus
the cold-item / cold-user masks. Because every row gets exactly one code, the parts are disjoint and cover all
rows by construction.

Datasets with an official split (UniSRec, NeMig, MIND, ml-100k folds): ``split=auto``/``official`` use it; the
cold splits refuse to replace it unless ``replace_official=True``; every split records in its stats whether it
replaced it (``official_split_replaced``: 0 or 1, present only for such datasets).

Per-user quotas (shared by every ratio split): a user with ``n`` interactions gets
``n_test = max(1, round(n * r_test))`` and ``n_val = max(1, round(n * r_val))`` (0 when the ratio is 0), shrunk
(val first) so that at least ``min_train`` rows stay in train. Users with fewer than
``min_train + #{non-zero eval ratios}`` interactions keep everything in train; they are counted in
``SplitResult.stats`` (nothing is dropped, so they are not a :class:`DropReport` entry).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, SchemaError

log = logging.getLogger(__name__)

# Row codes of SplitResult.assignment.
TRAIN, VAL, TEST, VAL_HISTORY, TEST_HISTORY = 0, 1, 2, 3, 4
CODE_NAMES: dict[int, str] = {
    TRAIN: "train",
    VAL: "val",
    TEST: "test",
    VAL_HISTORY: "val_history",
    TEST_HISTORY: "test_history",
}
FRAME_COLUMNS: tuple[str, ...] = ("uidx", "iidx", "rating", "weight", "timestamp")
OFFICIAL_LABELS: dict[str, int] = {"train": TRAIN, "val": VAL, "test": TEST}


@dataclass
class SplitResult:
    """Where each row of the frame goes.

    Attributes:
        assignment: ``(N,)`` int8, one of :data:`TRAIN`, :data:`VAL`, :data:`TEST`, :data:`VAL_HISTORY`,
            :data:`TEST_HISTORY` per frame row.
        cold_items: ``(n_items,)`` bool mask of items kept out of training, or None.
        cold_users: ``(n_users,)`` bool mask of users kept out of training, or None.
        stats: counts describing what the splitter did (saved in the protocol).
    """

    assignment: np.ndarray
    cold_items: np.ndarray | None = None
    cold_users: np.ndarray | None = None
    stats: dict[str, int] = field(default_factory=dict)


class Splitter(ABC):
    """Base class: validates the frame, calls :meth:`_split`, validates the result."""

    name: ClassVar[str]
    uses_official: ClassVar[bool] = False  # follows the dataset's official split when the frame has one

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor parameters as plain Python values (saved in the protocol)."""

    @abstractmethod
    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult: ...

    def __call__(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        """Split ``frame`` (``N`` rows, users ``< n_users``, items ``< n_items``) into a :class:`SplitResult`."""
        missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"{type(self).__name__}: frame lacks column(s) {missing}; found {list(frame.columns)}"
            )
        result = self._split(frame, n_users, n_items)
        if result.assignment.shape != (len(frame),):
            raise AssertionError(
                f"{type(self).__name__} assigned {result.assignment.shape} codes for {len(frame)} rows"
            )
        if "split" in frame.columns:
            result.stats["official_split_replaced"] = int(not self.uses_official)
        counts = np.bincount(result.assignment, minlength=len(CODE_NAMES))
        log.info(
            "%s split: %s",
            self.name,
            ", ".join(f"{CODE_NAMES[c]}={n}" for c, n in enumerate(counts) if n or c <= TEST),
        )
        return result


# --------------------------------------------------------------------------------------------- helpers


def _check_ratios(ratios: Sequence[float], owner: str) -> tuple[float, float, float]:
    r = tuple(float(x) for x in ratios)
    if len(r) != 3 or min(r) < 0 or r[0] <= 0 or abs(sum(r) - 1.0) > 1e-6:
        raise ConfigError(
            f"{owner}: ratios must be 3 non-negative numbers (train, val, test) with train > 0 summing to 1; "
            f"got {list(ratios)}"
        )
    return r  # type: ignore[return-value]


def _check_fraction(value: float, what: str, owner: str, *, open_right: bool = True) -> float:
    v = float(value)
    if not (0.0 < v < 1.0 if open_right else 0.0 <= v <= 1.0):
        bounds = "(0, 1)" if open_right else "[0, 1]"
        raise ConfigError(f"{owner}: {what} must be in {bounds}; got {value}")
    return v


def _refuse_official(frame: pd.DataFrame, splitter: Splitter, replace_official: bool) -> None:
    """ConfigError when the frame carries an official split that ``splitter`` would silently replace."""
    if "split" in frame.columns and not replace_official:
        raise ConfigError(
            f"split={splitter.name} would replace this dataset's official train/val/test split; use split=auto "
            f"or split=official, or pass split.replace_official=true to run split={splitter.name} anyway"
        )


def _round_half_up(x: np.ndarray) -> np.ndarray:
    # np.round is banker's rounding (2.5 -> 2); half-up is easier to state and reproduce.
    return np.floor(x + 0.5).astype(np.int64)


def _tail_split(
    uidx: np.ndarray,
    keys: tuple[np.ndarray, ...],
    quota: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Per user, order rows by ``keys`` and send the last ``n_test`` to test and the ``n_val`` before to val.

    Args:
        uidx: ``(N,)`` user of each row.
        keys: sort keys within a user, most significant first, each ``(N,)``.
        quota: maps per-user row counts ``(U',)`` to ``(n_val, n_test)``, each ``(U',)``.

    Returns:
        ``(N,)`` int8 codes in {TRAIN, VAL, TEST}.
    """
    n = len(uidx)
    codes = np.full(n, TRAIN, dtype=np.int8)
    if n == 0:
        return codes
    order = np.lexsort(tuple(reversed(keys)) + (uidx,))
    u_sorted = uidx[order]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    counts = np.diff(np.r_[starts, n])
    n_val, n_test = quota(counts)
    per_row_count = np.repeat(counts, counts)
    from_end = per_row_count - 1 - (np.arange(n) - np.repeat(starts, counts))
    nt, nv = np.repeat(n_test, counts), np.repeat(n_val, counts)
    sorted_codes = np.full(n, TRAIN, dtype=np.int8)
    sorted_codes[from_end < nt + nv] = VAL
    sorted_codes[from_end < nt] = TEST
    codes[order] = sorted_codes
    return codes


def _ratio_quota(
    ratios: tuple[float, float, float], min_train: int, stats: dict[str, int]
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Quota function of the per-user ratio rule in the module docstring; counts unsplittable users in ``stats``."""
    _, r_val, r_test = ratios
    need_val, need_test = int(r_val > 0), int(r_test > 0)

    def quota(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_val = np.maximum(need_val, _round_half_up(counts * r_val)) * need_val
        n_test = np.maximum(need_test, _round_half_up(counts * r_test)) * need_test
        excess = np.maximum(0, n_val + n_test + min_train - counts)
        cut = np.minimum(excess, n_val - need_val)
        n_val, excess = n_val - cut, excess - cut
        n_test = n_test - np.minimum(excess, n_test - need_test)
        splittable = counts >= min_train + need_val + need_test
        n_unsplit = int((~splittable).sum())
        stats["users_kept_in_train_too_few_interactions"] = (
            stats.get("users_kept_in_train_too_few_interactions", 0) + n_unsplit
        )
        if n_unsplit:
            log.info(
                "%d users have < %d interactions and keep them all in train",
                n_unsplit,
                min_train + need_val + need_test,
            )
        return np.where(splittable, n_val, 0), np.where(splittable, n_test, 0)

    return quota


def _random_ratio_codes(
    uidx: np.ndarray,
    rng: np.random.Generator,
    ratios: tuple[float, float, float],
    min_train: int,
    stats: dict[str, int],
) -> np.ndarray:
    """Per-user random split of rows by ``ratios`` (``(N,)`` codes); row order of the input fixes the result."""
    keys = (rng.random(len(uidx)), np.arange(len(uidx)))
    return _tail_split(uidx, keys, _ratio_quota(ratios, min_train, stats))


def _has_timestamps(frame: pd.DataFrame) -> bool:
    return bool(len(frame)) and bool((frame["timestamp"].to_numpy() >= 0).all())


# ------------------------------------------------------------------------------------------- splitters


class RandomSplit(Splitter):
    """Per-user random split by ``ratios`` (train, val, test), seeded.

    Args:
        ratios: fractions of each user's interactions for train, val, test (sum 1, train > 0).
        seed: RNG seed; the same frame and seed give the same split.
        min_train: rows each split user keeps in train; users with too few rows stay entirely in train.
    """

    name = "random"

    def __init__(
        self, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2024, min_train: int = 1
    ) -> None:
        self.ratios = _check_ratios(ratios, "RandomSplit")
        if int(min_train) < 1:
            raise ConfigError(f"RandomSplit: min_train must be >= 1; got {min_train}")
        self.seed, self.min_train = int(seed), int(min_train)

    def params(self) -> dict[str, Any]:
        return {"ratios": list(self.ratios), "seed": self.seed, "min_train": self.min_train}

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        stats: dict[str, int] = {}
        rng = np.random.default_rng(self.seed)
        codes = _random_ratio_codes(frame["uidx"].to_numpy(), rng, self.ratios, self.min_train, stats)
        return SplitResult(codes, stats=stats)


class TemporalSplit(Splitter):
    """Per-user chronological split.

    ``mode="leave_last_out"``: each user's last interaction goes to test and the second-to-last to val (users with
    fewer than 3 interactions keep all in train). ``mode="ratio"``: each user's latest rows go to val/test by
    ``ratios`` with the quota rule of the module docstring. Ties in time are broken by item index (the higher
    index counts as later), so the split is deterministic. Needs a timestamp on every row.

    Args:
        mode: "leave_last_out" or "ratio".
        ratios: used by ``mode="ratio"`` only.
    """

    name = "temporal"
    MODES: ClassVar[tuple[str, ...]] = ("leave_last_out", "ratio")

    def __init__(self, mode: str = "leave_last_out", ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> None:
        if mode not in self.MODES:
            raise ConfigError(f"TemporalSplit: unknown mode {mode!r}; expected one of {list(self.MODES)}")
        self.mode = mode
        self.ratios = _check_ratios(ratios, "TemporalSplit")

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"mode": self.mode}
        if self.mode == "ratio":
            p["ratios"] = list(self.ratios)
        return p

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        ts = frame["timestamp"].to_numpy()
        n_missing = int((ts < 0).sum())
        if n_missing:
            raise ConfigError(
                f"TemporalSplit needs a timestamp on every interaction; {n_missing} of {len(ts)} have none "
                "(timestamp = -1). Use split=random for datasets without timestamps."
            )
        stats: dict[str, int] = {}
        quota = _ratio_quota(self.ratios, 1, stats) if self.mode == "ratio" else _leave_last_out_quota(stats)
        codes = _tail_split(frame["uidx"].to_numpy(), (ts, frame["iidx"].to_numpy()), quota)
        return SplitResult(codes, stats=stats)


def _leave_last_out_quota(stats: dict[str, int]) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """One val and one test row per user with >= 3 rows; shorter users stay in train (counted in ``stats``)."""

    def quota(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = (counts >= 3).astype(np.int64)
        n_unsplit = int((ok == 0).sum())
        stats["users_kept_in_train_too_few_interactions"] = n_unsplit
        if n_unsplit:
            log.info("%d users have < 3 interactions and keep them all in train", n_unsplit)
        return ok, ok

    return quota


class ColdItemSplit(Splitter):
    """A seeded fraction of items never appears in training; all their interactions are evaluated.

    Cold items are drawn uniformly from the catalogue. Their interactions are split at random: a seeded
    ``cold_val_frac`` of them goes to val (so early stopping / model selection sees cold items too, otherwise a
    model tuned on warm validation alone has no signal for the cold case) and the rest to test. Warm items'
    interactions are split per user at random by ``ratios``. Evaluate cold and warm items separately with
    ``evaluate_full_ranking(..., item_subset=cold_items)`` / ``~cold_items``.

    Args:
        frac: fraction of catalogue items made cold, in (0, 1).
        seed: RNG seed.
        ratios: per-user split of warm items' interactions.
        cold_val_frac: fraction of cold-item interactions sent to val, in [0, 1] (0: all to test).
        min_train: see :class:`RandomSplit`.
        replace_official: allow the split on a dataset with an official split (which it then replaces);
            False raises :class:`ConfigError` there.
    """

    name = "cold_items"

    def __init__(
        self,
        frac: float = 0.2,
        seed: int = 2024,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        cold_val_frac: float = 0.5,
        min_train: int = 1,
        replace_official: bool = False,
    ) -> None:
        self.frac = _check_fraction(frac, "frac", "ColdItemSplit")
        self.cold_val_frac = _check_fraction(
            cold_val_frac, "cold_val_frac", "ColdItemSplit", open_right=False
        )
        self.ratios = _check_ratios(ratios, "ColdItemSplit")
        self.seed, self.min_train = int(seed), int(min_train)
        self.replace_official = bool(replace_official)

    def params(self) -> dict[str, Any]:
        return {
            "frac": self.frac,
            "seed": self.seed,
            "ratios": list(self.ratios),
            "cold_val_frac": self.cold_val_frac,
            "min_train": self.min_train,
            "replace_official": self.replace_official,
        }

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        _refuse_official(frame, self, self.replace_official)
        rng = np.random.default_rng(self.seed)
        iidx, uidx = frame["iidx"].to_numpy(), frame["uidx"].to_numpy()
        present = np.unique(iidx)
        n_cold = int(_round_half_up(np.array(self.frac * len(present))))
        if n_cold < 1 or n_cold >= len(present):
            raise ConfigError(
                f"ColdItemSplit: frac={self.frac} of {len(present)} items gives {n_cold} cold items; "
                "need at least 1 cold and 1 warm item"
            )
        cold_items = np.zeros(n_items, dtype=bool)
        cold_items[rng.choice(present, size=n_cold, replace=False)] = True
        is_cold_row = cold_items[iidx]
        stats: dict[str, int] = {"cold_items": n_cold, "cold_item_interactions": int(is_cold_row.sum())}

        codes = np.empty(len(frame), dtype=np.int8)
        cold_rows = np.flatnonzero(is_cold_row)
        n_cold_val = int(_round_half_up(np.array(self.cold_val_frac * len(cold_rows))))
        perm = rng.permutation(len(cold_rows))
        codes[cold_rows] = TEST
        codes[cold_rows[perm[:n_cold_val]]] = VAL
        warm_rows = np.flatnonzero(~is_cold_row)
        codes[warm_rows] = _random_ratio_codes(uidx[warm_rows], rng, self.ratios, self.min_train, stats)

        users_with_warm = np.zeros(n_users, dtype=bool)
        users_with_warm[uidx[warm_rows]] = True
        users_all = np.zeros(n_users, dtype=bool)
        users_all[uidx] = True
        stats["users_with_only_cold_items"] = int((users_all & ~users_with_warm).sum())
        return SplitResult(codes, cold_items=cold_items, stats=stats)


class ColdUserSplit(Splitter):
    """A seeded fraction of users never appears in training; at evaluation each is represented by a history.

    Eligible users are those with more interactions than their history size. Among them a seeded ``frac`` is made
    cold; cold users are divided (seeded, per user) into a val group (``cold_val_frac``) and a test group. Each
    cold user's history is its earliest interactions when the dataset has timestamps (ties by item index),
    otherwise a seeded random subset; the history goes to ``val_history``/``test_history`` (given to the model
    and masked when ranking) and the remaining interactions are the val/test targets. Warm users are split at
    random by ``ratios``.

    Args:
        frac: fraction of eligible users made cold, in (0, 1).
        seed: RNG seed.
        history: fraction of a cold user's interactions used as history (rounded half up, at least 1 and at most
            ``n - 1``); ignored when ``n_history`` is set.
        n_history: fixed number of history interactions per cold user (users need ``n_history + 1``).
        ratios: per-user split of warm users.
        cold_val_frac: fraction of cold users evaluated at val, in [0, 1] (0: all at test).
        min_train: see :class:`RandomSplit`.
        replace_official: see :class:`ColdItemSplit`.
    """

    name = "cold_users"

    def __init__(
        self,
        frac: float = 0.2,
        seed: int = 2024,
        history: float = 0.5,
        n_history: int | None = None,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        cold_val_frac: float = 0.5,
        min_train: int = 1,
        replace_official: bool = False,
    ) -> None:
        self.frac = _check_fraction(frac, "frac", "ColdUserSplit")
        self.history = _check_fraction(history, "history", "ColdUserSplit")
        if n_history is not None and int(n_history) < 1:
            raise ConfigError(f"ColdUserSplit: n_history must be >= 1 or null; got {n_history}")
        self.n_history = None if n_history is None else int(n_history)
        self.cold_val_frac = _check_fraction(
            cold_val_frac, "cold_val_frac", "ColdUserSplit", open_right=False
        )
        self.ratios = _check_ratios(ratios, "ColdUserSplit")
        self.seed, self.min_train = int(seed), int(min_train)
        self.replace_official = bool(replace_official)

    def params(self) -> dict[str, Any]:
        return {
            "frac": self.frac,
            "seed": self.seed,
            "history": self.history,
            "n_history": self.n_history,
            "ratios": list(self.ratios),
            "cold_val_frac": self.cold_val_frac,
            "min_train": self.min_train,
            "replace_official": self.replace_official,
        }

    def _history_size(self, counts: np.ndarray) -> np.ndarray:
        if self.n_history is not None:
            return np.full_like(counts, self.n_history)
        return np.clip(_round_half_up(counts * self.history), 1, np.maximum(counts - 1, 1))

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        _refuse_official(frame, self, self.replace_official)
        rng = np.random.default_rng(self.seed)
        uidx, iidx = frame["uidx"].to_numpy(), frame["iidx"].to_numpy()
        counts = np.bincount(uidx, minlength=n_users)
        present = counts > 0
        eligible = present & (counts > self._history_size(counts))
        cand = np.flatnonzero(eligible)
        n_cold = int(_round_half_up(np.array(self.frac * len(cand))))
        if n_cold < 1 or n_cold >= present.sum():
            raise ConfigError(
                f"ColdUserSplit: frac={self.frac} of {len(cand)} eligible users (of {int(present.sum())}) gives "
                f"{n_cold} cold users; need at least 1 cold and 1 warm user"
            )
        cold_users = np.zeros(n_users, dtype=bool)
        cold_pick = rng.choice(cand, size=n_cold, replace=False)
        cold_users[cold_pick] = True
        at_val = np.zeros(n_users, dtype=bool)
        at_val[rng.permutation(cold_pick)[: int(_round_half_up(np.array(self.cold_val_frac * n_cold)))]] = (
            True
        )

        codes = np.empty(len(frame), dtype=np.int8)
        cold_rows = np.flatnonzero(cold_users[uidx])
        by_time = _has_timestamps(frame)
        if by_time:
            # Latest rows are the target, earliest the history: "later" means larger (timestamp, iidx).
            keys = (frame["timestamp"].to_numpy()[cold_rows], iidx[cold_rows])
        else:
            keys = (rng.random(len(cold_rows)), np.arange(len(cold_rows)))

        def target_quota(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros_like(c), c - self._history_size(c)

        tail = _tail_split(uidx[cold_rows], keys, target_quota)  # TEST = target, TRAIN = history
        val_user = at_val[uidx[cold_rows]]
        codes[cold_rows] = np.where(
            tail == TEST, np.where(val_user, VAL, TEST), np.where(val_user, VAL_HISTORY, TEST_HISTORY)
        )
        stats: dict[str, int] = {
            "cold_users": n_cold,
            "cold_users_at_val": int(at_val.sum()),
            "users_ineligible_for_cold_too_few_interactions": int((present & ~eligible).sum()),
            "history_by_time": int(by_time),
        }
        warm_rows = np.flatnonzero(~cold_users[uidx])
        codes[warm_rows] = _random_ratio_codes(uidx[warm_rows], rng, self.ratios, self.min_train, stats)
        return SplitResult(codes, cold_users=cold_users, stats=stats)


class OfficialSplit(Splitter):
    """The dataset's own split (frame column ``split`` with values train/val/test).

    When the official split has no val rows, a per-user random ``val_from_train`` fraction of each user's train
    rows becomes val (quota rule of the module docstring, at least one train row kept).

    Args:
        val_from_train: fraction of train carved out as val when the dataset has none, in (0, 1).
        seed: RNG seed of that carving.
    """

    name = "official"
    uses_official = True

    def __init__(self, val_from_train: float = 0.1, seed: int = 2024) -> None:
        self.val_from_train = _check_fraction(val_from_train, "val_from_train", "OfficialSplit")
        self.seed = int(seed)

    def params(self) -> dict[str, Any]:
        return {"val_from_train": self.val_from_train, "seed": self.seed}

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        if "split" not in frame.columns:
            raise ConfigError(
                "OfficialSplit: this dataset has no official split (RawDataset.split is None); "
                "use split=random or split=temporal"
            )
        labels = frame["split"].astype(str)
        bad = ~labels.isin(list(OFFICIAL_LABELS))
        if bad.any():
            raise SchemaError(
                f"OfficialSplit: {int(bad.sum())} rows have split labels {sorted(labels[bad].unique())[:5]}; "
                f"expected {list(OFFICIAL_LABELS)}"
            )
        codes = labels.map(OFFICIAL_LABELS).to_numpy().astype(np.int8)
        stats: dict[str, int] = {"val_carved_from_train": 0}
        if not (codes == VAL).any():
            train_rows = np.flatnonzero(codes == TRAIN)
            rng = np.random.default_rng(self.seed)
            ratios = (1.0 - self.val_from_train, self.val_from_train, 0.0)
            sub = _random_ratio_codes(frame["uidx"].to_numpy()[train_rows], rng, ratios, 1, stats)
            codes[train_rows] = sub
            stats["val_carved_from_train"] = int((sub == VAL).sum())
            log.info(
                "official split has no val; carved %d train rows into val", stats["val_carved_from_train"]
            )
        return SplitResult(codes, stats=stats)


class AutoSplit(Splitter):
    """The dataset's official split when it has one (UniSRec, NeMig, MIND, ml-100k folds), else random.

    The protocol records the split actually used (``name`` becomes ``auto:official`` or ``auto:random``).

    Args:
        ratios: :class:`RandomSplit` ratios for datasets without an official split.
        seed: seed of the random split (and of carving val from an official train part).
        val_from_train: :class:`OfficialSplit` fraction carved from train when the official split has no val.
    """

    name = "auto"
    uses_official = True  # used only when the frame has one

    def __init__(
        self, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2024, val_from_train: float = 0.1
    ) -> None:
        self.random = RandomSplit(ratios=ratios, seed=seed)
        self.official = OfficialSplit(val_from_train=val_from_train, seed=seed)

    def params(self) -> dict[str, Any]:
        return {**self.random.params(), "val_from_train": self.official.val_from_train}

    def _split(self, frame: pd.DataFrame, n_users: int, n_items: int) -> SplitResult:
        chosen = self.official if "split" in frame.columns else self.random
        self.name = f"auto:{chosen.name}"
        log.info("split=auto uses the %s split", chosen.name)
        return chosen._split(frame, n_users, n_items)
