"""Reader for the UniSRec downstream benchmarks (Hou et al., KDD 2022), e.g. "Scientific".

These are RecBole atomic files made by RUCAIBox/UniSRec ``dataset/preprocessing/process_amazon.py`` from
Amazon 2018 ratings + metadata (5-core, chronological, leave-one-out). For user ``u`` with chronological
items ``s_1..s_n`` (indices into ``item2index``):

* ``{name}.train.inter``: for ``t = n-2 .. 2`` (in that order), a row ``u  <s_1..s_{t-1}, last 50>  s_t``;
* ``{name}.valid.inter``: one row ``u  <s_1..s_{n-2}, last 50>  s_{n-1}``;
* ``{name}.test.inter``: one row ``u  <s_1..s_{n-1}, last 50>  s_n``;

each with the header ``user_id:token  item_id_list:token_seq  item_id:token`` (TAB-separated, the list
space-separated). ``{name}.text`` maps an asin to its text (``title. categories. brand.``), and
``{name}.item2index`` / ``{name}.user2index`` map asins / reviewer ids to the indices (no header).

The three files repeat the same history, so reading every row would count each event many times. The
reader rebuilds each user's full sequence once (the train rows hold it uncapped), checks every row against
it, and labels each event with the benchmark's split: ``s_1..s_{n-2}`` train, ``s_{n-1}`` val, ``s_n`` test.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, SchemaError
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.text import clean_text
from recsys_gnn.data.schema import DropReport, RawDataset, make_interactions, require_columns

log = logging.getLogger(__name__)

INTER_COLUMNS: tuple[str, ...] = ("user_id:token", "item_id_list:token_seq", "item_id:token")
TEXT_COLUMNS: tuple[str, ...] = ("item_id:token", "text:token_seq")
SPLIT_FILES: tuple[tuple[str, str], ...] = (("train", "train"), ("valid", "val"), ("test", "test"))


@dataclass
class _Row:
    line: int
    history: list[int]
    target: int


@dataclass
class _User:
    train: list[_Row] = field(default_factory=list)
    val: list[_Row] = field(default_factory=list)
    test: list[_Row] = field(default_factory=list)


def read_unisrec(root: Path, name: str = "Scientific") -> RawDataset:
    """Read a UniSRec downstream benchmark as canonical interactions with its official split.

    Interactions: one per event of each user's rebuilt sequence; ``user`` = reviewer id, ``item`` = asin,
    ``timestamp`` = position in the sequence (0, 1, ...; the files carry no time), ``rating`` NaN,
    ``weight`` 1. ``split`` marks the valid.inter target "val", the test.inter target "test" and the rest
    "train". Repeat purchases stay as separate events.

    Counted repairs: exact duplicate lines, users lacking a valid or test row (all their lines dropped: their
    split cannot be reproduced), events whose asin has no text (dropped; the other events keep their
    positions), duplicate text rows (first kept). Refused: a user or item index missing from the index maps
    (the official maps cover every index), and truncated, empty, header-only or UTF-16 files.

    Args:
        root: folder holding the ``{name}.*`` files.
        name: benchmark name (the file prefix), e.g. ``"Scientific"``.

    Returns:
        RawDataset ``unisrec-<name lower>``: for Scientific 59,427 interactions (the paper's count),
        8,442 users, 4,385 items.

    Raises:
        DatasetNotFoundError: a file is missing.
        SchemaError: a header or value is wrong, an index is not in its map, the index maps conflict, or a
            row contradicts the user's sequence rebuilt from the other rows; :class:`TruncatedFileError`,
            :class:`EmptyFileError`, :class:`FileEncodingError` (SchemaErrors) for cut, empty, UTF-16 files.
    """
    root = Path(root)
    if not name or os.sep in name or "/" in name:
        raise ConfigError(
            f"unisrec: benchmark name {name!r} is not a file prefix; expected e.g. 'Scientific'"
        )
    report = DropReport()
    item_of = _read_index(root / f"{name}.item2index", report)
    user_of = _read_index(root / f"{name}.user2index", report)
    texts = _read_texts(root / f"{name}.text", report)

    users: dict[int, _User] = defaultdict(_User)
    for stem, split in SPLIT_FILES:
        for user, row in _read_inter(root / f"{name}.{stem}.inter", report, user_of, item_of):
            getattr(users[user], split).append(row)

    # The history cap (50 in UniSRec) is the longest history in the files.
    cap = max(
        (len(r.history) for rows in users.values() for r in [*rows.train, *rows.val, *rows.test]), default=0
    )
    u_col: list[int] = []
    i_col: list[int] = []
    pos_col: list[int] = []
    split_col: list[str] = []
    incomplete = 0
    for user in sorted(users):
        rows = users[user]
        if not rows.val or not rows.test:
            incomplete += len(rows.train) + len(rows.val) + len(rows.test)
            continue
        seq = _rebuild(user, rows, cap, root, name)
        n = len(seq)
        u_col.extend([user] * n)
        i_col.extend(seq)
        pos_col.extend(range(n))
        split_col.extend(["train"] * (n - 2) + ["val", "test"])
    # Without both held-out rows the user's split cannot be reproduced.
    report.add(
        "lines of users without a valid.inter or test.inter row (dropped)", incomplete, f"{name}.inter"
    )

    if not u_col:
        raise SchemaError(
            f"{root / name}.*.inter: no user has a train, valid and test row; expected the UniSRec "
            "leave-one-out layout"
        )
    df = pd.DataFrame({"u": u_col, "i": i_col, "pos": pos_col, "split": split_col})
    asin = df["i"].map(item_of)
    # dtype=bool: an empty object-dtype mask would select columns, not rows
    has_text = asin.map(lambda a: bool(texts.get(a, ""))).to_numpy(dtype=bool)
    report.add("events of items without text in .text (dropped)", int((~has_text).sum()), f"{name}.inter")
    df = df[has_text]
    asin = asin[has_text]

    interactions = make_interactions(
        df["u"].map(user_of).to_numpy(), asin.to_numpy(), timestamp=df["pos"].to_numpy(dtype=np.int64)
    )
    split = pd.Series(df["split"].to_numpy(), name="split")
    order = pd.unique(asin)
    root_category = _root_category([texts[a] for a in order])
    items = pd.DataFrame(
        {
            "item": order,
            "title": [_title(texts[a], root_category) for a in order],
            "text": [texts[a] for a in order],
        }
    )
    log.info(
        "unisrec-%s: %d interactions (%s), %d users, %d items",
        name.lower(),
        len(interactions),
        split.value_counts().to_dict(),
        interactions["user"].nunique(),
        len(items),
    )
    return RawDataset(
        name=f"unisrec-{name.lower()}",
        interactions=interactions,
        items=items,
        has_ratings=False,
        rating_scale=None,
        split=split,
        report=report,
    )


def _rebuild(user: int, rows: _User, cap: int, root: Path, name: str) -> list[int]:
    """The user's full sequence ``s_1..s_n``, checked against every train/valid/test row.

    train.inter lists a user's rows from the latest target back to ``s_2`` (whose history is ``[s_1]``), so
    read backwards the first history plus all targets is the uncapped train sequence.
    """
    if len(rows.val) > 1 or len(rows.test) > 1:
        extra = (rows.val[1:] + rows.test[1:])[0]
        raise SchemaError(
            f"{root / name}.*.inter: user {user} has {len(rows.val)} valid and {len(rows.test)} test rows "
            f"with different targets (line {extra.line}); expected one of each"
        )
    val, test = rows.val[0], rows.test[0]
    train = rows.train[::-1]
    seq = (train[0].history + [r.target for r in train]) if train else list(val.history)

    def check(row: _Row, prefix: list[int], stem: str) -> None:
        # A capped history is the last `cap` items; an uncapped one is all of them.
        if row.history != prefix[-cap:] or (len(row.history) < cap and len(row.history) != len(prefix)):
            raise SchemaError(
                f"{root / f'{name}.{stem}.inter'}: line {row.line}: history of user {user} "
                f"({_short(row.history)}) does not match the sequence rebuilt from the other rows "
                f"({_short(prefix)}); expected the UniSRec leave-one-out layout"
            )

    for k, row in enumerate(train):
        check(row, seq[: len(train[0].history) + k], "train")
    check(val, seq, "valid")
    check(test, seq + [val.target], "test")
    return seq + [val.target, test.target]


def _short(xs: list[int]) -> str:
    return (
        " ".join(map(str, xs))
        if len(xs) <= 8
        else " ".join(map(str, xs[:3])) + " ... " + " ".join(map(str, xs[-3:]))
    )


def _read_lines(path: Path, expected: str) -> list[str]:
    return rawfile.read_text(path, "utf-8", expected, "the UniSRec benchmark file").splitlines()


def _split_lines(
    path: Path, lines: list[str], n_fields: int, start: int, report: DropReport
) -> list[tuple[int, list[str]]]:
    """TAB-split ``lines[start:]`` into ``n_fields`` fields; a short last line is a cut file (refused)."""
    out = []
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != n_fields:
            if i == last and len(fields) < n_fields:
                raise rawfile.truncated_last_line(path, i + 1, len(fields), n_fields)
            raise SchemaError(
                f"{path}: line {i + 1}: expected {n_fields} TAB-separated fields, found {len(fields)}: {line[:100]!r}"
            )
        out.append((i + 1, fields))
    if not out:
        raise rawfile.no_data_rows(path, f"rows of {n_fields} TAB-separated fields")
    return out


def _int(value: str, path: Path, line: int, column: str) -> int:
    v = value.strip()
    if not v.isdigit():
        raise SchemaError(
            f"{path}: line {line}: {column}={value!r} is not an index; expected an integer >= 0"
        )
    return int(v)


def _read_index(path: Path, report: DropReport) -> dict[int, str]:
    """``{index: original id}`` from a headerless ``id<TAB>index`` map; exact duplicate lines are counted."""
    seen: dict[int, tuple[str, int]] = {}
    ids: dict[str, int] = {}
    dups = 0
    lines = _read_lines(path, "'id<TAB>index' lines")
    for line, (orig, idx) in _split_lines(path, lines, 2, 0, report):
        i, o = _int(idx, path, line, "index"), orig.strip()
        if not o:
            raise SchemaError(f"{path}: line {line}: empty id for index {i}; expected a non-empty id")
        if i in seen or o in ids:
            if seen.get(i, ("", 0))[0] == o:
                dups += 1
                continue
            other = seen[i][1] if i in seen else seen[ids[o]][1]
            raise SchemaError(
                f"{path}: line {line}: {o!r} -> {i} conflicts with line {other}; expected a one-to-one id/index map"
            )
        seen[i] = (o, line)
        ids[o] = i
    report.add("exact duplicate lines (dropped)", dups, path.name)
    return {i: o for i, (o, _) in seen.items()}


def _read_texts(path: Path, report: DropReport) -> dict[str, str]:
    """``{asin: cleaned text}``; a repeated asin keeps its first text (counted)."""
    lines = _read_lines(path, f"the header {list(TEXT_COLUMNS)} and rows")
    header = lines[0].split("\t")
    require_columns(pd.DataFrame(columns=header), TEXT_COLUMNS, str(path))
    k_item, k_text = header.index(TEXT_COLUMNS[0]), header.index(TEXT_COLUMNS[1])
    texts: dict[str, str] = {}
    dups = conflicts = 0
    for _, fields in _split_lines(path, lines, len(header), 1, report):
        asin, text = fields[k_item].strip(), clean_text(fields[k_text])
        if asin in texts:
            dups += 1
            conflicts += texts[asin] != text
            continue
        texts[asin] = text
    report.add("duplicate item rows (first kept)", dups, path.name)
    report.add("duplicate item rows with a different text (first kept)", conflicts, path.name)
    return texts


def _read_inter(
    path: Path, report: DropReport, user_of: dict[int, str], item_of: dict[int, str]
) -> list[tuple[int, _Row]]:
    """``(user index, row)`` of an ``.inter`` file in file order; exact duplicate lines are counted.

    Every user index must be in ``user_of`` and every item index in ``item_of`` (the index maps).
    """
    lines = _read_lines(path, f"the header {list(INTER_COLUMNS)} and rows")
    header = lines[0].split("\t")
    require_columns(pd.DataFrame(columns=header), INTER_COLUMNS, str(path))
    k_user, k_hist, k_item = (header.index(c) for c in INTER_COLUMNS)
    out: list[tuple[int, _Row]] = []
    seen: set[tuple[str, ...]] = set()
    dups = 0
    for line, fields in _split_lines(path, lines, len(header), 1, report):
        key = (fields[k_user], fields[k_hist], fields[k_item])
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        user = _int(fields[k_user], path, line, INTER_COLUMNS[0])
        hist = [_int(x, path, line, INTER_COLUMNS[1]) for x in fields[k_hist].split()]
        if not hist:
            raise SchemaError(
                f"{path}: line {line}: empty {INTER_COLUMNS[1]}; expected at least one item index"
            )
        target = _int(fields[k_item], path, line, INTER_COLUMNS[2])
        if user not in user_of:
            raise SchemaError(
                f"{path}: line {line}: user index {user} is not in the user2index map "
                f"({len(user_of)} users); expected an index listed there"
            )
        unknown = [i for i in [*hist, target] if i not in item_of]
        if unknown:
            raise SchemaError(
                f"{path}: line {line}: item index {unknown[0]} is not in the item2index map "
                f"({len(item_of)} items); expected an index listed there"
            )
        out.append((user, _Row(line, hist, target)))
    report.add("exact duplicate lines (dropped)", dups, path.name)
    return out


def _title(text: str, root_category: str) -> str:
    """Display title: the ``title`` part of a UniSRec ``title. categories. brand.`` text.

    The parts are only separated by ". ", which titles and brands contain too, so the title ends where the
    categories start: at ``". <root_category>"``, or at ``". . "`` when the item has no category. Otherwise
    everything before the last two separators is taken.
    """
    for marker in ([f". {root_category}"] if root_category else []) + [". . "]:
        head = text.split(marker, 1)[0].strip()
        if head != text.strip() and head:
            return head
    parts = text.rstrip(". ").rsplit(". ", 2)
    return parts[0].strip() if len(parts) == 3 and parts[0].strip() else text


def _root_category(texts: list[str]) -> str:
    """The top-level category all items share ("Industrial & Scientific"), or "" if there is none.

    Taken from the texts with exactly three ". " separators, whose category part is unambiguous.
    """
    cats = [p[1] for t in texts if len(p := t.rstrip(". ").split(". ")) == 3 and p[1]]
    if not cats:
        return ""
    prefix = os.path.commonprefix(cats)
    # Cut back to whole words: "Industrial & Scientific L" -> "Industrial & Scientific".
    if not all(len(c) == len(prefix) or c[len(prefix)] == " " for c in cats):
        prefix = prefix[: prefix.rfind(" ") + 1] if " " in prefix else ""
    return prefix.strip()
