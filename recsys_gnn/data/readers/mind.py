"""Microsoft MIND news data, and the MIND ``behaviors.tsv`` format shared with other news datasets (NeMig).

Format (https://msnews.github.io/assets/doc/introduction.md); TAB-separated, UTF-8, no header:

* ``behaviors.tsv``: impression id, user id, time (``M/D/YYYY h:mm:ss AM``), click history (space-separated
  news ids, may be empty), impressions (space-separated ``newsid-label``, 1 clicked / 0 not clicked).
  NeMig's file has the same columns without the time.
* ``news.tsv``: news id, category, subcategory, title, abstract, url, title entities, abstract entities
  (the last two are JSON lists; not used here).

Protocol of :func:`read_mind` (what becomes an interaction and its split):

* the official folders are the split: the train folder's impressions are "train", the dev folder's "test";
* val: each user's last train-folder impression by time (ties: the later line), for users with at least
  two train-folder impressions, becomes "val" (MIND itself takes the train period's last day as dev);
* interactions are clicks: every news in a click history ("train", timestamp = time of the first
  impression row that shows it in the user's history -- the row's history repeats on all of the user's rows
  and is collapsed to one click per user and news), plus every clicked candidate (split of its impression,
  timestamp = impression time);
* a news a user clicks again (a clicked candidate already in their history or clicked before) is one
  interaction: the earliest click's time and split (ties: history, then train, val, test), so a val/test
  interaction is never already known from training, with weight = number of clicks;
* MIND times carry no time zone; they are read as UTC.

Item text is title, abstract and category/subcategory. Impression ids restart at 1 in each MIND file, so
:func:`read_mind` prefixes them with the folder name (``"train/17"``, ``"dev/17"``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import (
    ConfigError,
    DatasetNotFoundError,
    EmptyFileError,
    EmptySplitError,
    FileEncodingError,
    SchemaError,
)
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.text import clean_text, join_fields
from recsys_gnn.data.schema import IMPRESSION_COLUMNS, DropReport, RawDataset, make_interactions

log = logging.getLogger(__name__)

MIND_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
SPLITS: tuple[str, ...] = ("train", "val", "test")
NEWS_COLUMNS: tuple[str, ...] = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
_BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
# first fields of a header line someone added to news.tsv (the official file has none)
_HEADER_IDS = {"news id", "newsid", "nid", "id"}
# order used to keep the earliest of repeated clicks when timestamps tie (NeMig has none at all)
_SPLIT_RANK = {"history": 0, "train": 1, "val": 2, "test": 3}


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file, 1-based, without the ``\\n``/``\\r\\n`` ending.

    Only ``\\n`` ends a line (a stray ``\\r`` inside a field does not split it); a leading BOM is removed.

    Raises:
        DatasetNotFoundError: the file does not exist.
        FileEncodingError: a line is not valid UTF-8, or the file is UTF-16.
        TruncatedFileError: the last line has no line ending (a file cut short).
        EmptyFileError: the file holds no non-blank line.
    """
    path = rawfile.require_file(path, "the MIND-format file")
    n_data = 0
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if i == 1:
                rawfile.check_encoding(path, raw, "UTF-8")
            if not raw.endswith(b"\n") and raw.strip():
                raise rawfile.no_line_ending(path, i, raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FileEncodingError(f"{path}:{i}: not valid UTF-8 ({e}); expected UTF-8 text") from e
            if i == 1 and line.startswith("\ufeff"):
                line = line[1:]
            n_data += bool(line.strip())
            yield i, line.rstrip("\r\n")
    if n_data == 0:
        raise EmptyFileError(f"{path}: file is empty; expected TAB-separated MIND-format lines")


def _parse_impression_log(field: str, path: Path, line_no: int) -> tuple[list[str], list[int]]:
    """Split ``"N1-0 N2-1"`` into candidate ids and 0/1 labels."""
    cands: list[str] = []
    labels: list[int] = []
    for tok in field.split():
        item, sep, label = tok.rpartition("-")
        if not sep or not item or label not in ("0", "1"):
            hint = (
                " (unlabelled impressions, such as MIND-large's test set, cannot be read)" if not sep else ""
            )
            raise SchemaError(
                f"{path}:{line_no}: impressions column: entry {tok!r} is not 'newsid-label' with label 0 or 1{hint}"
            )
        cands.append(sys.intern(item))
        labels.append(1 if label == "1" else 0)
    return cands, labels


def read_behaviors(
    path: Path, split: str, report: DropReport, *, with_time: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a MIND-format ``behaviors.tsv``.

    Args:
        path: the file.
        split: label written in the ``split`` column of every impression ("train", "val" or "test").
        report: receives the rows dropped (blank lines, impressions without candidates).
        with_time: whether the file has MIND's time column (NeMig's has not: timestamps are then -1).

    Returns:
        ``(impressions, history)``, row-aligned, one row per impression line:
        impressions has :data:`IMPRESSION_COLUMNS` (``impression_id`` str as in the file, ``user`` str,
        ``candidates`` list[str], ``labels`` list[int] 0/1, ``split`` str); history has ``impression_id``,
        ``user``, ``timestamp`` (int64 seconds since epoch, UTC, or -1), ``history`` (tuple[str, ...], the
        clicked news ids before the impression; rows with an identical history share one tuple) and
        ``line`` (1-based line number in the file).

    Raises:
        ConfigError: ``split`` is not one of :data:`SPLITS`.
        SchemaError: a line has the wrong number of fields, an empty id, a repeated impression id, a
            malformed ``newsid-label`` entry or an unparseable time; the message names file and line.
    """
    if split not in SPLITS:
        raise ConfigError(f"read_behaviors: split {split!r} is not one of {list(SPLITS)}")
    path = Path(path)
    columns = _BEHAVIOR_COLUMNS if with_time else tuple(c for c in _BEHAVIOR_COLUMNS if c != "time")
    imp_ids: list[str] = []
    users: list[str] = []
    times: list[str] = []
    histories: list[tuple[str, ...]] = []
    candidates: list[list[str]] = []
    labels: list[list[int]] = []
    lines: list[int] = []
    history_cache: dict[str, tuple[str, ...]] = {}
    first_line_of: dict[str, int] = {}
    n_blank = n_empty = 0
    for line_no, line in iter_lines(path):
        if not line.strip():
            n_blank += 1
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise SchemaError(
                f"{path}:{line_no}: found {len(fields)} tab-separated fields; expected {len(columns)} "
                f"({', '.join(columns)})"
            )
        if with_time:
            imp_id, user, time, history, impressions = fields
        else:
            imp_id, user, history, impressions = fields
            time = ""
        imp_id, user = imp_id.strip(), user.strip()
        if not imp_id or not user:
            raise SchemaError(f"{path}:{line_no}: empty {'impression_id' if not imp_id else 'user_id'} field")
        if imp_id in first_line_of:
            raise SchemaError(
                f"{path}:{line_no}: impression id {imp_id!r} already used on line {first_line_of[imp_id]}; "
                "expected unique impression ids"
            )
        first_line_of[imp_id] = line_no
        cands, labs = _parse_impression_log(impressions, path, line_no)
        if not cands:
            n_empty += 1
            continue
        hist = history_cache.get(history)
        if hist is None:
            hist = tuple(sys.intern(x) for x in history.split())
            history_cache[history] = hist
        imp_ids.append(imp_id)
        users.append(sys.intern(user))
        times.append(time)
        histories.append(hist)
        candidates.append(cands)
        labels.append(labs)
        lines.append(line_no)
    report.add("blank line", n_blank, str(path))
    report.add("impression without candidates, dropped", n_empty, str(path))

    if with_time:
        timestamps = _parse_times(times, lines, path)
    else:
        timestamps = np.full(len(lines), -1, dtype=np.int64)
    impressions_df = pd.DataFrame(
        {
            "impression_id": imp_ids,
            "user": users,
            "candidates": candidates,
            "labels": labels,
            "split": split,
        },
        columns=list(IMPRESSION_COLUMNS),
    )
    history_df = pd.DataFrame(
        {
            "impression_id": imp_ids,
            "user": users,
            "timestamp": timestamps,
            "history": histories,
            "line": np.asarray(lines, dtype=np.int64),
        }
    )
    log.info("%s: %d impressions of %d users", path, len(impressions_df), impressions_df["user"].nunique())
    return impressions_df, history_df


def _parse_times(times: list[str], lines: list[int], path: Path) -> np.ndarray:
    """``(N,)`` int64 seconds since epoch (UTC) of MIND's ``M/D/YYYY h:mm:ss AM`` strings."""
    parsed = pd.to_datetime(pd.Series(times, dtype=object), format=MIND_TIME_FORMAT, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise SchemaError(
            f"{path}:{lines[i]}: time {times[i]!r} is not in MIND's format {MIND_TIME_FORMAT!r} "
            "(e.g. '11/15/2019 10:22:32 AM')"
        )
    return (parsed.to_numpy().astype("datetime64[s]").astype(np.int64)).astype(np.int64)


def read_news(path: Path, report: DropReport) -> pd.DataFrame:
    """Read a MIND ``news.tsv``.

    Returns:
        One row per news id with columns ``item``, ``category``, ``subcategory``, ``title``, ``abstract``
        (str, possibly empty); a repeated id keeps its first row (counted in ``report``).

    Raises:
        SchemaError: a line does not have the 8 fields of :data:`NEWS_COLUMNS` or has an empty news id.
    """
    path = Path(path)
    rows: list[list[str]] = []
    n_blank = 0
    for line_no, line in iter_lines(path):
        if not line.strip():
            n_blank += 1
            continue
        fields = line.split("\t")
        if len(fields) != len(NEWS_COLUMNS):
            raise SchemaError(
                f"{path}:{line_no}: found {len(fields)} tab-separated fields; expected {len(NEWS_COLUMNS)} "
                f"({', '.join(NEWS_COLUMNS)})"
            )
        if not fields[0].strip():
            raise SchemaError(f"{path}:{line_no}: empty news_id field")
        if line_no == 1 and fields[0].strip().lower().replace("_", " ") in _HEADER_IDS:
            raise SchemaError(
                f"{path}:1: {fields[0]!r} looks like a header; the official news.tsv has none "
                f"(expected {len(NEWS_COLUMNS)} fields {', '.join(NEWS_COLUMNS)} on every line)"
            )
        rows.append([fields[0].strip(), *fields[1:5]])
    report.add("blank line", n_blank, str(path))
    news = pd.DataFrame(rows, columns=["item", "category", "subcategory", "title", "abstract"])
    dup = news["item"].duplicated()
    report.add("repeated news id, kept the first row", int(dup.sum()), str(path))
    return news[~dup].reset_index(drop=True)


def news_items(news: pd.DataFrame) -> pd.DataFrame:
    """Canonical items table (``item``, ``title``, ``text``) of :func:`read_news` rows.

    The text is title, abstract and ``Category: category / subcategory`` joined with
    :func:`~recsys_gnn.data.readers.text.join_fields` (cleaned, empty parts left out: MIND has news
    without abstract).
    """
    texts = []
    for title, abstract, cat, sub in zip(
        news["title"], news["abstract"], news["category"], news["subcategory"], strict=True
    ):
        category = " / ".join(p for p in (clean_text(cat), clean_text(sub)) if p)
        texts.append(join_fields(title, abstract, f"Category: {category}" if category else None))
    titles = [clean_text(t) for t in news["title"]]
    return pd.DataFrame({"item": news["item"].to_numpy(), "title": titles, "text": texts})


def history_clicks(history: pd.DataFrame, report: DropReport, source: str = "") -> pd.DataFrame:
    """One click per (user, news) found in any click history.

    Args:
        history: rows of :func:`read_behaviors`' history table (``user``, ``timestamp``, ``history``).
        report: receives the count of history entries collapsed because they repeat.
        source: name used in the report.

    Returns:
        Columns ``user``, ``item``, ``timestamp`` (earliest timestamp of a row whose history lists the news).
    """
    if history.empty:
        return pd.DataFrame({"user": [], "item": [], "timestamp": np.array([], dtype=np.int64)})
    # the same history repeats verbatim on each of a user's rows: collapse those rows before exploding so
    # MIND-large's ~70M repeated entries are never materialised
    rows = history.groupby(["user", "history"], sort=False)["timestamp"].agg(["min", "size"]).reset_index()
    n_entries = int((rows["history"].map(len) * rows["size"]).sum())
    exploded = rows[["user", "history", "min"]].explode("history").dropna(subset=["history"])
    clicks = (
        exploded.groupby(["user", "history"], sort=False)["min"]
        .min()
        .reset_index()
        .rename(columns={"history": "item", "min": "timestamp"})
    )
    report.add(
        "click-history entry repeated (same user and news on several impression rows), collapsed",
        n_entries - len(clicks),
        source,
    )
    clicks["timestamp"] = clicks["timestamp"].astype(np.int64)
    return clicks


def impression_clicks(impressions: pd.DataFrame, timestamps: np.ndarray) -> pd.DataFrame:
    """Clicked candidates of impressions.

    Args:
        impressions: table with :data:`IMPRESSION_COLUMNS`.
        timestamps: ``(N,)`` int64 time of each impression row.

    Returns:
        Columns ``user``, ``item``, ``timestamp``, ``split`` (the impression's), one row per click.
    """
    users, items, stamps, splits = [], [], [], []
    rows = zip(
        impressions["user"],
        impressions["candidates"],
        impressions["labels"],
        timestamps,
        impressions["split"],
        strict=True,
    )
    for user, cands, labs, ts, split in rows:
        for c, lab in zip(cands, labs, strict=True):
            if lab == 1:
                users.append(user)
                items.append(c)
                stamps.append(ts)
                splits.append(split)
    return pd.DataFrame(
        {"user": users, "item": items, "timestamp": np.asarray(stamps, dtype=np.int64), "split": splits}
    )


def _drop_candidates_without_text(
    impressions: pd.DataFrame, known: set[str], report: DropReport, source: str
) -> pd.Series:
    """Remove candidates that have no item text; returns the ``(N,)`` bool mask of impressions kept."""
    n_removed = n_clicked_removed = 0
    new_cands, new_labels, keep = [], [], []
    for cands, labs in zip(impressions["candidates"], impressions["labels"], strict=True):
        if all(c in known for c in cands):
            new_cands.append(cands)
            new_labels.append(labs)
            keep.append(True)
            continue
        kept = [(c, lab) for c, lab in zip(cands, labs, strict=True) if c in known]
        n_removed += len(cands) - len(kept)
        n_clicked_removed += sum(labs) - sum(lab for _, lab in kept)
        new_cands.append([c for c, _ in kept])
        new_labels.append([lab for _, lab in kept])
        keep.append(bool(kept))
    report.add("impression candidate without news text, removed from its impression", n_removed, source)
    report.add("clicked candidate among those removed for lack of news text", n_clicked_removed, source)
    mask = pd.Series(np.asarray(keep, dtype=bool), index=impressions.index)  # empty: still a row mask
    report.add("impression left without candidates, dropped", int((~mask).sum()), source)
    impressions["candidates"] = new_cands
    impressions["labels"] = new_labels
    return mask


def build_news_dataset(
    name: str,
    impressions: pd.DataFrame,
    history: pd.DataFrame,
    items: pd.DataFrame,
    report: DropReport,
) -> RawDataset:
    """Assemble a :class:`RawDataset` from impressions with final split labels (see the module protocol).

    Args:
        name: dataset name.
        impressions: :data:`IMPRESSION_COLUMNS` rows, ``split`` already final ("train"/"val"/"test").
        history: the history table row-aligned with ``impressions`` (:func:`read_behaviors`).
        items: canonical items table; candidates and clicks of news not in it are removed and counted.
        report: drop report, stored in the dataset.

    Raises:
        EmptySplitError: no train or no test interaction is left.
    """
    impressions = impressions.reset_index(drop=True).copy()
    history = history.reset_index(drop=True)
    known = set(items["item"])
    keep = _drop_candidates_without_text(impressions, known, report, name)
    impressions, history = impressions[keep.to_numpy()], history[keep.to_numpy()]

    hist = history_clicks(history, report, name)
    no_text = ~hist["item"].isin(known)
    report.add("click-history news without news text, dropped", int(no_text.sum()), name)
    hist = hist[~no_text].assign(split="train", rank=_SPLIT_RANK["history"])
    clicks = impression_clicks(impressions, history["timestamp"].to_numpy())
    clicks["rank"] = clicks["split"].map(_SPLIT_RANK)

    events = pd.concat([hist, clicks], ignore_index=True)
    events = events.sort_values(["timestamp", "rank"], kind="stable")
    n_clicks = events.groupby(["user", "item"], sort=False)["rank"].transform("size")
    repeated = events.duplicated(["user", "item"], keep="first")
    report.add(
        "repeated click on a news the user already clicked, merged into the earliest (weight = clicks)",
        int(repeated.sum()),
        name,
    )
    events = events.assign(weight=n_clicks.astype(np.float64))[~repeated].sort_index().reset_index(drop=True)

    interactions = make_interactions(
        events["user"], events["item"], weight=events["weight"], timestamp=events["timestamp"]
    )
    split = pd.Series(events["split"].to_numpy(), index=interactions.index, name="split")
    counts = split.value_counts()
    for s in ("train", "test"):
        if counts.get(s, 0) == 0:
            raise EmptySplitError(f"{name}: no {s!r} interaction (clicks) left after reading")
    if counts.get("val", 0) == 0:
        log.warning("%s: no 'val' interaction", name)
    log.info(
        "%s: %d interactions (%s), %d items, %d impressions",
        name,
        len(interactions),
        ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS),
        len(items),
        len(impressions),
    )
    return RawDataset(
        name=name,
        interactions=interactions,
        items=items.reset_index(drop=True),
        has_ratings=False,
        rating_scale=None,
        split=split,
        # the click history shown with each impression (news ids; may hold news without text, dropped later)
        impressions=impressions[list(IMPRESSION_COLUMNS)]
        .assign(history=history["history"].to_numpy())
        .reset_index(drop=True),
        report=report,
    )


def _mark_last_as_val(impressions: pd.DataFrame, history: pd.DataFrame) -> None:
    """Set ``split`` to "val" on each user's last impression by (time, line) if the user has >= 2."""
    order = history[["user", "timestamp", "line"]].sort_values(["user", "timestamp", "line"], kind="stable")
    grouped = order.groupby("user", sort=False)
    last = grouped.cumcount(ascending=False) == 0
    size = grouped["line"].transform("size")
    val_rows = order.index[(last & (size >= 2)).to_numpy()]
    impressions.loc[val_rows, "split"] = "val"
    log.info("val: last train-folder impression of %d users", len(val_rows))


def read_mind(root: Path, train_dir: str = "train", test_dir: str = "dev", name: str = "mind") -> RawDataset:
    """Read Microsoft MIND from the official train and dev folders (see the module docstring's protocol).

    Args:
        root: folder holding ``<train_dir>/`` and ``<test_dir>/``, each with ``behaviors.tsv`` and
            ``news.tsv`` as in the official zips (MINDsmall_train.zip, MINDsmall_dev.zip, ...).
        train_dir: folder of the training impressions.
        test_dir: folder of the test impressions (MIND's dev set: MIND-large's test set has no labels).
        name: dataset name for the result and messages.

    Returns:
        Clicks as interactions with the official split, all impressions, news text as items.

    Raises:
        DatasetNotFoundError: a needed file is missing (named in the message).
        SchemaError: a file is malformed (file and line named).
    """
    root = Path(root)
    parts = {"train": root / train_dir, "test": root / test_dir}
    needed = [d / f for d in parts.values() for f in ("behaviors.tsv", "news.tsv")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: missing {', '.join(missing)}; expected the official MIND train and dev folders "
            f"(behaviors.tsv, news.tsv) as {root / train_dir} and {root / test_dir}"
        )
    report = DropReport()
    imps, hists, news = [], [], []
    for split, folder in parts.items():
        imp, hist = read_behaviors(folder / "behaviors.tsv", split, report)
        if split == "train":
            _mark_last_as_val(imp, hist)
        # MIND numbers impressions from 1 in every file
        imp["impression_id"] = folder.name + "/" + imp["impression_id"]
        imps.append(imp)
        hists.append(hist)
        news.append(read_news(folder / "news.tsv", report))

    all_news = pd.concat(news, ignore_index=True)
    repeated = all_news.duplicated("item", keep="first")
    # the dev folder repeats the train folder's rows for news in both; only differing rows are worth a note
    distinct = all_news.drop_duplicates(keep="first")
    n_conflict = int(distinct.duplicated("item").sum())
    report.add("news id in both folders with different fields, kept the train folder's row", n_conflict, name)
    items = news_items(all_news[~repeated].reset_index(drop=True))
    return build_news_dataset(
        name,
        pd.concat(imps, ignore_index=True),
        pd.concat(hists, ignore_index=True),
        items,
        report,
    )
