"""Readers for Amazon Review Data 2018 (Ni, Li & McAuley, EMNLP 2019): reviews/ratings plus product metadata.

Official files (https://nijianmo.github.io/amazon/index.html), per category ``C``:

* ``C_5.json.gz``: 5-core reviews, gzip JSON lines with ``reviewerID, asin, overall, unixReviewTime, ...``;
* ``C.csv``: all ratings, no header, ``item,user,rating,timestamp`` (the order the UCSD page gives and the
  UniSRec preprocessing reads);
* ``meta_C.json.gz``: product metadata, gzip JSON lines with ``asin, title, brand, category[], description[]``.

Items are represented by text, so an item needs a metadata row with some text; otherwise its interactions
are dropped and counted. Metadata is scraped: titles may be markup (most Magazine_Subscriptions titles are
``<span class="a-size-medium a-color-secondary"``), fields hold HTML and entities, and asins repeat.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, EmptyFileError, SchemaError, TruncatedFileError
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.text import (
    clean_text,
    first_sentence,
    is_junk_title,
    join_fields,
    unique_texts,
)
from recsys_gnn.data.schema import DropReport, RawDataset, make_interactions

log = logging.getLogger(__name__)

RATING_SCALE: tuple[float, float] = (1.0, 5.0)
REVIEW_FIELDS: tuple[str, ...] = ("reviewerID", "asin", "overall", "unixReviewTime")
CSV_COLUMNS: tuple[str, ...] = ("item", "user", "rating", "timestamp")
# The 2018 metadata writes every key on every line (empty when unknown); a key absent from the whole file
# means another format, e.g. the 2023 release (parent_asin, store, categories).
META_TEXT_FIELDS: tuple[str, ...] = ("title", "brand", "category", "description")
# Real category labels are short names ("Professional & Educational Journals"); longer entries or sentences
# are scraped feature bullets ("No expiration, no fees.") and belong with the description.
_MAX_LABEL_WORDS = 6
_TITLE_FALLBACK_CHARS = 80


def read_amazon_5core(root: Path, category: str, *, dataset_name: str | None = None) -> RawDataset:
    """Read a category's official 5-core reviews and its metadata.

    Interactions: one per review, ``rating`` = ``overall`` (1-5), ``timestamp`` = ``unixReviewTime``,
    ``weight`` 1. Exact duplicate reviews (same reviewer, item, rating and time; present in the official
    files) are dropped and counted; items without metadata or without text are dropped with their
    interactions and counted (see :func:`read_item_texts`).

    Args:
        root: folder holding ``{category}_5.json.gz`` and ``meta_{category}.json.gz``.
        category: official category file name, e.g. ``"Gift_Cards"``, ``"Magazine_Subscriptions"``.
        dataset_name: name of the returned dataset; default ``amazon-<category>`` (lower case, dashes).

    Returns:
        RawDataset with explicit ratings on the 1-5 scale.

    Raises:
        DatasetNotFoundError: a file is missing.
        SchemaError: a file is corrupt, not UTF-8, lacks a field, or holds a value of the wrong type/range.
    """
    root = Path(root)
    _check_category(category)
    path = _require(root / f"{category}_5.json.gz", "5-core reviews")
    meta = _require(root / f"meta_{category}.json.gz", "metadata")
    report = DropReport()
    users, items, ratings, times = [], [], [], []
    for line_no, rec in _json_lines(path, report):
        missing = [f for f in REVIEW_FIELDS if f not in rec]
        if missing:
            raise SchemaError(
                f"{path}: line {line_no}: missing field(s) {missing}; expected {list(REVIEW_FIELDS)} in every "
                f"review, found {sorted(rec)}"
            )
        users.append(_id(rec["reviewerID"], path, line_no, "reviewerID"))
        items.append(_id(rec["asin"], path, line_no, "asin"))
        ratings.append(_rating(rec["overall"], path, line_no, "overall"))
        times.append(_timestamp(rec["unixReviewTime"], path, line_no, "unixReviewTime"))
    df = pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})
    name = dataset_name or f"amazon-{category.lower().replace('_', '-')}"
    return _finish(name, df, path.name, meta, report)


def read_amazon_ratings(root: Path, category: str, *, dataset_name: str | None = None) -> RawDataset:
    """Read a category's official ratings-only CSV (all ratings, not 5-core) and its metadata.

    The CSV has no header and the columns ``item,user,rating,timestamp``. Exact duplicate rows (the official
    Magazine_Subscriptions.csv has 1,221) are dropped and counted; items without metadata or text are
    dropped with their ratings and counted.

    Args:
        root: folder holding ``{category}.csv`` and ``meta_{category}.json.gz``.
        category: official category file name, e.g. ``"Magazine_Subscriptions"``.
        dataset_name: name of the returned dataset; default ``amazon-<category>-ratings``.

    Returns:
        RawDataset with explicit ratings on the 1-5 scale.

    Raises:
        DatasetNotFoundError: a file is missing.
        SchemaError: a row does not have 4 fields, a value does not parse or is out of range, the file has a
            header, or the user and item columns appear swapped.
    """
    root = Path(root)
    _check_category(category)
    path = _require(root / f"{category}.csv", "ratings-only CSV")
    meta = _require(root / f"meta_{category}.json.gz", "metadata")
    report = DropReport()
    df = _read_ratings_csv(path, report)
    name = dataset_name or f"amazon-{category.lower().replace('_', '-')}-ratings"
    return _finish(name, df, path.name, meta, report, check_order_against_meta=True)


@dataclass
class _Meta:
    """The text fields of one metadata row (raw values)."""

    line: int
    title: Any
    brand: Any
    category: Any
    description: Any


def read_item_texts(path: Path, items: set[str], report: DropReport) -> pd.DataFrame:
    """Build item texts from an Amazon 2018 metadata file for the asins in ``items``.

    Text = title, ``Brand: ...``, ``Category: a > b``, description, each HTML-stripped and
    whitespace-collapsed, joined by :func:`~recsys_gnn.data.readers.text.join_fields`. A junk title (scraped
    markup, :func:`~recsys_gnn.data.readers.text.is_junk_title`) is left out of the text; the display title
    then falls back to the description's first sentence, the brand, or the last category label (counted).
    Category entries that are sentences (feature bullets) move to the description (counted). Repeated asins
    are collapsed to their first row (counted).

    Args:
        path: ``meta_{category}.json.gz``.
        items: asins to build texts for; rows of other asins are skipped (duplicates are counted among
            the rows of ``items`` only).
        report: receives the counts.

    Returns:
        Table ``(n, 3)`` with columns item, title, text for the asins of ``items`` that have a metadata row;
        text may be ``""`` when the row holds no text at all.
    """
    rows: dict[str, _Meta] = {}
    fields_seen: set[str] = set()
    dup_rows = dup_conflicts = 0
    for line_no, rec in _json_lines(path, report):
        if "asin" not in rec:
            raise SchemaError(
                f"{path}: line {line_no}: missing field 'asin'; expected an Amazon 2018 metadata row with "
                f"asin, title, brand, category, description (found {sorted(rec)[:12]})"
            )
        asin = _id(rec["asin"], path, line_no, "asin")
        fields_seen.update(rec)
        if asin not in items:
            continue
        m = _Meta(line_no, *(rec.get(f) for f in META_TEXT_FIELDS))
        if asin in rows:
            dup_rows += 1
            old = rows[asin]
            dup_conflicts += (old.title, old.brand, old.category, old.description) != (
                m.title,
                m.brand,
                m.category,
                m.description,
            )
            continue
        rows[asin] = m
    absent = [f for f in META_TEXT_FIELDS if f not in fields_seen]
    if absent:
        raise SchemaError(
            f"{path}: field(s) {absent} appear in no row; expected Amazon 2018 metadata with "
            f"{list(META_TEXT_FIELDS)} on every line (the 2023 release uses other names: parent_asin, store, "
            f"categories)"
        )
    report.add("duplicate metadata rows for an asin (collapsed to the first)", dup_rows, path.name)
    report.add("duplicate metadata rows with different text (first kept)", dup_conflicts, path.name)

    out_items, titles, texts = [], [], []
    junk = missing_title = moved = 0
    for asin, m in rows.items():
        try:
            raw_title = clean_text(m.title) if not isinstance(m.title, str) else m.title
            labels, sentences = _split_categories(_as_list(m.category))
            brand = clean_text(m.brand)
            desc = unique_texts(_as_list(m.description))
        except TypeError as e:
            raise SchemaError(f"{path}: line {m.line} (asin {asin}): {e}") from e
        is_junk = is_junk_title(raw_title)
        title = "" if is_junk else clean_text(raw_title)
        moved += bool(sentences)
        desc = desc + [s for s in sentences if s not in desc]
        text = join_fields(
            title,
            f"Brand: {brand}" if brand else None,
            f"Category: {' > '.join(labels)}" if labels else None,
            *desc,
        )
        if not title and text:
            junk += is_junk
            missing_title += not is_junk
            title = (
                first_sentence(desc[0], _TITLE_FALLBACK_CHARS)
                if desc
                else brand or (labels[-1] if labels else "")
            )
        out_items.append(asin)
        titles.append(title)
        texts.append(text)
    report.add("junk (markup) titles replaced by description/brand/category", junk, path.name)
    report.add("empty titles replaced by description/brand/category", missing_title, path.name)
    report.add("rows whose category list held sentences (moved to description)", moved, path.name)
    return pd.DataFrame({"item": out_items, "title": titles, "text": texts})


def _finish(
    name: str,
    df: pd.DataFrame,
    source: str,
    meta: Path,
    report: DropReport,
    check_order_against_meta: bool = False,
) -> RawDataset:
    """Drop duplicate and text-less interactions, attach item texts, build the RawDataset."""
    exact = df.duplicated(["user", "item", "rating", "timestamp"])
    report.add("exact duplicate interactions (dropped)", int(exact.sum()), source)
    df = df[~exact]
    repeats = int(df.duplicated(["user", "item"]).sum())
    if repeats:
        # Repeat reviews of an item at other times/ratings are real events; filtering decides about them.
        log.info("%s: %d repeated (user, item) pairs with another rating or time kept", source, repeats)

    if check_order_against_meta:
        _check_column_order(df, meta, source)
    items = read_item_texts(meta, set(df["item"].unique()), report)
    with_meta = df["item"].isin(set(items["item"]))
    no_meta_items = df.loc[~with_meta, "item"].nunique()
    report.add(
        f"interactions of items without a row in {meta.name} (dropped)", int((~with_meta).sum()), source
    )
    empty = set(items.loc[items["text"] == "", "item"])
    has_text = df["item"].isin(set(items["item"]) - empty)
    report.add(
        "interactions of items whose metadata has no text (dropped)",
        int((with_meta & ~has_text).sum()),
        source,
    )
    if no_meta_items or empty:
        log.warning(
            "%s: dropped %d items without metadata and %d without text", source, no_meta_items, len(empty)
        )
    df = df[has_text]
    order = pd.unique(df["item"])
    items = items.set_index("item").loc[order].reset_index()

    interactions = make_interactions(
        df["user"].to_numpy(),
        df["item"].to_numpy(),
        rating=df["rating"].to_numpy(dtype=np.float64),
        timestamp=df["timestamp"].to_numpy(dtype=np.int64),
    )
    log.info(
        "%s: %d interactions, %d users, %d items",
        name,
        len(interactions),
        interactions["user"].nunique(),
        len(items),
    )
    return RawDataset(
        name=name,
        interactions=interactions,
        items=items[["item", "title", "text"]],
        has_ratings=True,
        rating_scale=RATING_SCALE,
        report=report,
    )


def _read_ratings_csv(path: Path, report: DropReport) -> pd.DataFrame:
    """Parse the headerless ``item,user,rating,timestamp`` CSV; any bad row (the last one included) is an error."""
    text = rawfile.read_text(
        path, "utf-8", f"headerless rows {','.join(CSV_COLUMNS)}", "the official Amazon 2018 ratings-only CSV"
    )
    users, items, ratings, times = [], [], [], []
    rows = list(csv.reader(text.splitlines()))
    last = max((k for k, row in enumerate(rows, start=1) if row and any(f.strip() for f in row)), default=0)
    for line_no, row in enumerate(rows, start=1):
        if not row or not any(f.strip() for f in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            if line_no == last and len(row) < len(CSV_COLUMNS):
                raise rawfile.truncated_last_line(path, line_no, len(row), len(CSV_COLUMNS), CSV_COLUMNS)
            raise SchemaError(
                f"{path}: line {line_no}: expected {len(CSV_COLUMNS)} comma-separated fields "
                f"{list(CSV_COLUMNS)}, found {len(row)}: {','.join(row)[:100]!r}"
            )
        try:
            r = _rating(row[2], path, line_no, "rating")
            t = _timestamp(row[3], path, line_no, "timestamp")
            u = _id(row[1], path, line_no, "user")
            i = _id(row[0], path, line_no, "item")
        except SchemaError as e:
            if line_no == 1:
                raise SchemaError(
                    f"{e} (the official file has no header; expected rows {','.join(CSV_COLUMNS)})"
                ) from None
            raise
        items.append(i)
        users.append(u)
        ratings.append(r)
        times.append(t)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})


def _check_column_order(df: pd.DataFrame, meta: Path, source: str) -> None:
    """Raise when the user column, not the item column, holds the metadata's asins (swapped columns)."""
    asins = {rec.get("asin") for _, rec in _json_lines(meta, DropReport())}
    item_hits = df["item"].isin(asins).mean() if len(df) else 0.0
    user_hits = df["user"].isin(asins).mean() if len(df) else 0.0
    if user_hits > item_hits:
        raise SchemaError(
            f"{source}: {user_hits:.0%} of the second column but {item_hits:.0%} of the first are asins of "
            f"{meta.name}; expected the official column order {','.join(CSV_COLUMNS)}"
        )


def _json_lines(path: Path, report: DropReport) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` of a gzip JSON-lines file.

    Refused: a line that is not a JSON object (:class:`SchemaError`), a corrupt gzip stream, a stream that
    stops early or a last line without its line ending (:class:`TruncatedFileError`), UTF-16 text
    (:class:`FileEncodingError`) and a file without any object (:class:`EmptyFileError`).
    """
    n_objects = 0
    last = b"\n"
    try:
        with gzip.open(path, "rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                last = raw
                if line_no == 1:
                    rawfile.check_encoding(path, raw, "UTF-8")
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):
                    raise rawfile.no_line_ending(path, line_no, raw)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise SchemaError(
                        f"{path}: line {line_no}: byte {raw[e.start : e.start + 1]!r} at column {e.start} is "
                        "not valid UTF-8; expected UTF-8 JSON lines"
                    ) from e
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SchemaError(
                        f"{path}: line {line_no}: not valid JSON ({e.msg} at column {e.colno}): {line[:100]!r}"
                    ) from None
                if not isinstance(rec, dict):
                    raise SchemaError(
                        f"{path}: line {line_no}: expected a JSON object, got {type(rec).__name__}: {line[:100]!r}"
                    )
                n_objects += 1
                yield line_no, rec
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        kind = TruncatedFileError if isinstance(e, EOFError) else SchemaError
        raise kind(
            f"{path}: corrupt or truncated gzip stream ({e}); expected the complete official .json.gz file "
            "(copy or download it again)"
        ) from e
    if n_objects == 0:
        raise EmptyFileError(
            f"{path}: no JSON object in the file ({last[:40]!r}); expected Amazon 2018 JSON lines"
        )


def _split_categories(values: list[Any]) -> tuple[list[str], list[str]]:
    """Split a raw category list into labels and misplaced sentences (both cleaned, distinct, in order)."""
    labels, sentences = [], []
    for c in unique_texts(values):
        if c.endswith((".", "!", "?")) or len(c.split()) > _MAX_LABEL_WORDS:
            sentences.append(c)
        else:
            labels.append(c)
    return labels, sentences


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


def _id(v: Any, path: Path, line_no: int, field: str) -> str:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise SchemaError(f"{path}: line {line_no}: {field}={v!r} is not an id; expected a non-empty string")
    s = str(v).strip()
    if not s:
        raise SchemaError(f"{path}: line {line_no}: {field} is empty; expected a non-empty id")
    return s


def _rating(v: Any, path: Path, line_no: int, field: str) -> float:
    try:
        r = float(v) if not isinstance(v, bool) else float("nan")
    except (TypeError, ValueError):
        r = float("nan")
    if not RATING_SCALE[0] <= r <= RATING_SCALE[1]:
        raise SchemaError(
            f"{path}: line {line_no}: {field}={v!r} is not a rating; expected a number in "
            f"[{RATING_SCALE[0]:g}, {RATING_SCALE[1]:g}]"
        )
    return r


def _timestamp(v: Any, path: Path, line_no: int, field: str) -> int:
    try:
        t = float(v) if not isinstance(v, bool) else float("nan")
    except (TypeError, ValueError):
        t = float("nan")
    if not (math.isfinite(t) and t >= 0 and t == int(t)):
        raise SchemaError(
            f"{path}: line {line_no}: {field}={v!r} is not a timestamp; expected integer seconds since 1970"
        )
    return int(t)


def _check_category(category: str) -> None:
    if not category or not re.fullmatch(r"[A-Za-z0-9_]+", category):
        raise ConfigError(
            f"amazon: category {category!r} is not an official category file name; expected e.g. "
            "'Gift_Cards' or 'Magazine_Subscriptions'"
        )


def _require(path: Path, what: str) -> Path:
    return rawfile.require_file(path, f"the official Amazon 2018 {what} file")
