"""MovieLens readers: ml-latest-small (CSV), ml-100k (``u.data``/``u.item``) and ml-1m (``::``-separated).

Each reader returns a :class:`~recsys_gnn.data.schema.RawDataset` with explicit ratings, ids as strings and one
item row per movie of the movies file (including movies nobody rated). Item text is
``"<title (year)>. Genres: Action, Comedy. Tags: funny, dark"``, with titles moved out of the catalogue's
``"Title, The (year)"`` form.

Bad input policy (the same in all three readers):

* a missing file raises :class:`DatasetNotFoundError` naming the path;
* a missing/renamed CSV column raises :class:`SchemaError` naming the file, the missing and the found columns;
* a line with the wrong number of fields, or a value that does not parse (id, rating, timestamp, genre flag),
  raises :class:`SchemaError` naming the file, the line number and the value;
* a file cut short (last line without its line ending, or with too few fields) raises
  :class:`TruncatedFileError`; an empty file, or a CSV with a header only, raises :class:`EmptyFileError`;
  a UTF-16 copy raises :class:`FileEncodingError` (see :mod:`recsys_gnn.data.readers.rawfile`);
* blank lines inside a file are skipped and counted; exact duplicate lines are collapsed and counted;
* a rating of a movie absent from the movies file is dropped and counted ("unknown item"), never raised: the
  rest of the file is still valid data.

Every count goes to the dataset's :class:`~recsys_gnn.data.schema.DropReport` (and is logged at WARNING).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, SchemaError
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.text import join_fields
from recsys_gnn.data.schema import DropReport, RawDataset, make_interactions, require_columns

log = logging.getLogger(__name__)

MAX_TAGS = 10
ML100K_FOLDS: tuple[str, ...] = ("1", "2", "3", "4", "5", "a", "b")

# Genre labels that say "no genre" and carry no text.
_NO_GENRE = {"(no genres listed)", "unknown"}

# Articles the MovieLens catalogue moves behind the title ("Usual Suspects, The"); "L'" attaches without a space.
_ARTICLES = "The|A|An|La|Le|Les|L'|Il|Lo|Gli|Das|Der|Die|Den|Det|El|Los|Las|Un|Une|Una"
_YEAR_RE = re.compile(r"\s*\((\d{4}(?:\s*[-–]\s*\d{4})?)\)\s*$")
_ARTICLE_RE = re.compile(rf"^(?P<base>.+), (?P<art>{_ARTICLES})(?P<alt> \(.*\))?$")


# --------------------------------------------------------------------------------------------------------------
# Titles and text
# --------------------------------------------------------------------------------------------------------------


def clean_title(raw: str) -> str:
    """Display title from a MovieLens catalogue title.

    ``"Usual Suspects, The (1995)"`` becomes ``"The Usual Suspects (1995)"``,
    ``"City of Lost Children, The (Cité des enfants perdus, La) (1995)"`` becomes
    ``"The City of Lost Children (Cité des enfants perdus, La) (1995)"`` and stray spaces are removed. The year
    stays in the title: remakes share a name.
    """
    title = " ".join(raw.split())
    year = ""
    m = _YEAR_RE.search(title)
    if m:
        year = f" ({m.group(1)})"
        title = title[: m.start()]
    m = _ARTICLE_RE.match(title)
    if m:
        art = m.group("art")
        space = "" if art.endswith("'") else " "
        title = f"{art}{space}{m.group('base')}{m.group('alt') or ''}"
    return f"{title}{year}".strip()


def item_text(title: str, genres: Sequence[str], tags: Sequence[str] = ()) -> str:
    """``"<title>. Genres: a, b. Tags: x, y"``; empty parts are left out."""
    genres = [g for g in genres if g and g not in _NO_GENRE]
    return join_fields(
        title,
        f"Genres: {', '.join(genres)}" if genres else None,
        f"Tags: {', '.join(tags)}" if tags else None,
    )


# --------------------------------------------------------------------------------------------------------------
# Parsing with line numbers
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """Rows of one file as strings, with the 1-based line number of each row (for error messages)."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray

    def take(self, keep: np.ndarray) -> _Table:
        return _Table(self.path, self.frame[keep].reset_index(drop=True), self.lines[keep])


def _read_text(path: Path, encoding: str, expected: str) -> str:
    return rawfile.read_text(path, encoding, expected, "the MovieLens file")


def _short(line: str, n: int = 120) -> str:
    return line if len(line) <= n else line[:n] + "..."


def _rows_to_table(
    path: Path,
    rows: list[list[str]],
    lines: list[int],
    names: Sequence[str],
    blank: int,
    report: DropReport,
    source: str,
) -> _Table:
    """Check field counts (see the module's bad input policy) and build a string table."""
    report.add("blank lines skipped", blank, source)
    n = len(names)
    lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(lens != n)
    # the last line alone short: a cut file (every line short is a wrong format, reported at its first line)
    if len(bad) == 1 and bad[-1] == len(rows) - 1 and lens[-1] < n:
        raise rawfile.truncated_last_line(path, lines[-1], int(lens[-1]), n, names)
    if len(bad):
        i = int(bad[0])
        raise SchemaError(
            f"{path}: line {lines[i]}: expected {n} fields ({', '.join(names)}), got {len(rows[i])}: "
            f"{_short(repr(rows[i]))}" + (f"; {len(bad)} such lines in the file" if len(bad) > 1 else "")
        )
    frame = (
        pd.DataFrame(rows, columns=list(names), dtype=object) if rows else pd.DataFrame(columns=list(names))
    )
    return _Table(path, frame, np.asarray(lines, dtype=np.int64))


def _read_delimited(
    path: Path,
    names: Sequence[str],
    *,
    encoding: str,
    report: DropReport,
    source: str,
    split: Callable[[str], list[str]],
) -> _Table:
    """Read a header-less delimited file, one record per line, split by ``split``."""
    expected = f"lines of {len(names)} fields ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
    raw_lines = _read_text(path, encoding, expected).split("\n")
    # A final newline leaves an empty last element; trailing blank lines are padding, not skipped rows.
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    rows: list[list[str]] = []
    lines: list[int] = []
    blank = 0
    for i, line in enumerate(raw_lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            blank += 1
            continue
        rows.append(split(line))
        lines.append(i)
    return _rows_to_table(path, rows, lines, names, blank, report, source)


def _read_csv(path: Path, columns: Sequence[str], *, report: DropReport, source: str) -> _Table:
    """Read a UTF-8 CSV with a header (RFC-4180 quoting) and keep ``columns`` (in any order in the file)."""
    expected = f"a header with columns {list(columns)} and data rows"
    text = _read_text(path, "utf-8", expected)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    require_columns(pd.DataFrame(columns=header), tuple(columns), str(path))
    rows: list[list[str]] = []
    lines: list[int] = []
    blank = 0
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                blank += 1
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as err:
        raise SchemaError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from None
    if not rows:
        raise rawfile.no_data_rows(path, f"rows of {list(columns)}")
    table = _rows_to_table(path, rows, lines, header, blank, report, source)
    table.frame = table.frame[list(columns)]
    return table


def _parse_ids(table: _Table, col: str) -> np.ndarray:
    """Integer ids of column ``col`` as canonical strings (``" 01"`` -> ``"1"``), shape ``(n,)``."""
    s = table.frame[col].astype(str).str.strip()
    bad = ~s.str.fullmatch(r"\d+").to_numpy(dtype=bool)
    _raise_first_bad(table, col, s, bad, "a non-negative integer id")
    return s.astype(np.int64).astype(str).to_numpy(dtype=object)


def _parse_int(table: _Table, col: str) -> np.ndarray:
    s = table.frame[col].astype(str).str.strip()
    bad = ~s.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)
    _raise_first_bad(table, col, s, bad, "an integer")
    return s.astype(np.int64).to_numpy()


def _parse_rating(table: _Table, col: str, scale: tuple[float, float]) -> np.ndarray:
    s = table.frame[col].astype(str).str.strip()
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    _raise_first_bad(table, col, s, bad, "a number")
    lo, hi = scale
    _raise_first_bad(table, col, s, (values < lo) | (values > hi), f"a rating in [{lo}, {hi}]")
    return values


def _raise_first_bad(table: _Table, col: str, values: pd.Series, bad: np.ndarray, expected: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        n = int(bad.sum())
        raise SchemaError(
            f"{table.path}: line {table.lines[i]}: column {col!r}: cannot use {values.iloc[i]!r}; expected "
            f"{expected}" + (f" ({n} such values in the file)" if n > 1 else "")
        )


# --------------------------------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------------------------------


def _ratings(
    table: _Table, cols: Sequence[str], scale: tuple[float, float], report: DropReport, source: str
) -> pd.DataFrame:
    """Typed interactions from a ratings table with columns ``cols`` = (user, item, rating, timestamp)."""
    u, i, r, t = cols
    df = make_interactions(
        _parse_ids(table, u),
        _parse_ids(table, i),
        rating=_parse_rating(table, r, scale),
        timestamp=_parse_int(table, t),
    )
    dup = df.duplicated(keep="first").to_numpy()
    report.add("exact duplicate rating lines collapsed", int(dup.sum()), source)
    return df[~dup].reset_index(drop=True)


def _drop_unknown_items(
    df: pd.DataFrame, items: pd.DataFrame, movies_file: str, report: DropReport, source: str
) -> pd.DataFrame:
    known = df["item"].isin(items["item"]).to_numpy()
    if not known.all():
        examples = sorted(set(df.loc[~known, "item"]))[:5]
        report.add(
            f"ratings of unknown item (movie id not in {movies_file}, e.g. {examples}) dropped",
            int((~known).sum()),
            source,
        )
    return df[known].reset_index(drop=True)


def _items(
    ids: np.ndarray,
    raw_titles: Sequence[str],
    genres: Sequence[Sequence[str]],
    tags: dict[str, list[str]],
    table: _Table,
    report: DropReport,
    source: str,
) -> pd.DataFrame:
    """One row per movie id; exact duplicate lines collapse, conflicting ones keep the first line."""
    titles = [clean_title(t) for t in raw_titles]
    frame = pd.DataFrame(
        {
            "item": ids,
            "title": titles,
            "genres": ["|".join(g) for g in genres],
        }
    )
    exact = frame.duplicated(keep="first").to_numpy()
    report.add("exact duplicate movie lines collapsed", int(exact.sum()), source)
    frame, lines = frame[~exact], table.lines[~exact]
    conflict = frame["item"].duplicated(keep="first").to_numpy()
    if conflict.any():
        log.warning(
            "%s: movie id %s repeated with other data at line %d",
            table.path,
            frame["item"].iloc[np.argmax(conflict)],
            lines[np.argmax(conflict)],
        )
        report.add(
            "movie lines repeating an id with other title/genres (first kept) dropped",
            int(conflict.sum()),
            source,
        )
    frame = frame[~conflict].reset_index(drop=True)
    frame["text"] = [
        item_text(title, g.split("|") if g else [], tags.get(item, []))
        for item, title, g in zip(frame["item"], frame["title"], frame["genres"], strict=True)
    ]
    return frame[["item", "title", "text"]]


def _top_tags(users: np.ndarray, items: np.ndarray, tags: pd.Series, max_tags: int) -> dict[str, list[str]]:
    """Per item, its ``max_tags`` tags applied by the most users (ties alphabetical), lower-cased."""
    t = pd.DataFrame({"user": users, "item": items, "tag": tags.to_numpy()}).drop_duplicates()
    counts = t.groupby(["item", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item", "n", "tag"], ascending=[True, False, True], kind="stable")
    top = counts.groupby("item", sort=False).head(max_tags)
    return top.groupby("item", sort=False)["tag"].agg(list).to_dict()


# --------------------------------------------------------------------------------------------------------------
# ml-latest-small
# --------------------------------------------------------------------------------------------------------------


def read_ml_latest_small(root: Path | str, use_tags: bool = True) -> RawDataset:
    """Read MovieLens latest-small (``ratings.csv``, ``movies.csv``, ``tags.csv``; UTF-8 CSV with header).

    Args:
        root: folder holding the CSV files.
        use_tags: add each movie's most frequent user tags (at most 10) to its text.

    Returns:
        Ratings 0.5-5.0 in steps of 0.5; ``items`` has one row per movie of ``movies.csv``.
    """
    root = Path(root)
    name = "ml-latest-small"
    report = DropReport()

    mt = _read_csv(
        root / "movies.csv", ("movieId", "title", "genres"), report=report, source=f"{name}/movies.csv"
    )
    movie_ids = _parse_ids(mt, "movieId")
    genres = [
        [] if g.strip() in _NO_GENRE else [x.strip() for x in g.split("|") if x.strip()]
        for g in mt.frame["genres"]
    ]

    tag_lists: dict[str, list[str]] = {}
    if use_tags:
        src = f"{name}/tags.csv"
        tt = _read_csv(
            root / "tags.csv", ("userId", "movieId", "tag", "timestamp"), report=report, source=src
        )
        t_users, t_items = _parse_ids(tt, "userId"), _parse_ids(tt, "movieId")
        norm = tt.frame["tag"].astype(str).str.split().str.join(" ").str.lower()
        keep = (norm != "").to_numpy()
        report.add("empty tags dropped", int((~keep).sum()), src)
        known = np.isin(t_items, movie_ids)
        report.add(
            "tags of unknown item (movie id not in movies.csv) dropped", int((keep & ~known).sum()), src
        )
        keep &= known
        tag_lists = _top_tags(t_users[keep], t_items[keep], norm[keep], MAX_TAGS)

    items = _items(movie_ids, list(mt.frame["title"]), genres, tag_lists, mt, report, f"{name}/movies.csv")

    src = f"{name}/ratings.csv"
    rt = _read_csv(
        root / "ratings.csv", ("userId", "movieId", "rating", "timestamp"), report=report, source=src
    )
    inter = _ratings(rt, ("userId", "movieId", "rating", "timestamp"), (0.5, 5.0), report, src)
    inter = _drop_unknown_items(inter, items, "movies.csv", report, src)
    _log_summary(name, inter, items)
    return RawDataset(name, inter, items, has_ratings=True, rating_scale=(0.5, 5.0), report=report)


# --------------------------------------------------------------------------------------------------------------
# ml-100k
# --------------------------------------------------------------------------------------------------------------

_U_DATA_FIELDS = ("user id", "item id", "rating", "timestamp")


def _normalize_fold(fold: int | str | None) -> str | None:
    if fold is None:
        return None
    key = str(fold).strip().lower()
    if isinstance(fold, bool) or key not in ML100K_FOLDS:
        raise ConfigError(
            f"ml-100k fold {fold!r}: expected None, 1..5, 'a' or 'b' (files u<fold>.base/u<fold>.test)"
        )
    return key


def _read_u_genre(path: Path, report: DropReport, source: str) -> list[str]:
    """Genre names of ``u.genre`` (``name|index`` lines) in flag-column order."""
    t = _read_delimited(
        path,
        ("genre", "index"),
        encoding="latin-1",
        report=report,
        source=source,
        split=lambda s: s.split("|"),
    )
    idx = _parse_int(t, "index")
    if sorted(idx.tolist()) != list(range(len(idx))):
        raise SchemaError(f"{path}: genre indices {idx.tolist()} are not 0..{len(idx) - 1}, each once")
    names = t.frame["genre"].str.strip().to_numpy()
    return [str(n) for _, n in sorted(zip(idx, names, strict=True))]


def read_ml_100k(root: Path | str, fold: int | str | None = None) -> RawDataset:
    """Read MovieLens 100K: ``u.data`` (or an official ``u<fold>.base``/``.test`` pair) and ``u.item``.

    ``u.item`` is Latin-1 and ``|``-separated: id, title, release date, video release date, IMDb URL and one 0/1
    flag per genre of ``u.genre``.

    Args:
        root: folder holding the ``u.*`` files.
        fold: None reads all of ``u.data``; 1-5, "a" or "b" reads ``u<fold>.base`` (split "train") and
            ``u<fold>.test`` (split "test") instead.

    Returns:
        Ratings 1-5; ``split`` set when ``fold`` is given.
    """
    root = Path(root)
    name = "ml-100k"
    key = _normalize_fold(fold)
    report = DropReport()

    genre_names = _read_u_genre(root / "u.genre", report, f"{name}/u.genre")
    item_fields = ("movie id", "title", "release date", "video release date", "IMDb URL", *genre_names)
    src = f"{name}/u.item"
    it = _read_delimited(
        root / "u.item",
        item_fields,
        encoding="latin-1",
        report=report,
        source=src,
        split=lambda s: s.split("|"),
    )
    flags = (
        np.stack([_parse_int(it, g) for g in genre_names], axis=1)
        if genre_names
        else np.zeros((len(it.frame), 0))
    )
    bad = ~np.isin(flags, (0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise SchemaError(
            f"{it.path}: line {it.lines[r]}: genre flag {genre_names[c]!r} is {flags[r, c]}; expected 0 or 1"
        )
    genres = [[g for g, f in zip(genre_names, row, strict=True) if f] for row in flags]
    items = _items(_parse_ids(it, "movie id"), list(it.frame["title"]), genres, {}, it, report, src)

    parts = [("u.data", None)] if key is None else [(f"u{key}.base", "train"), (f"u{key}.test", "test")]
    frames, labels = [], []
    for filename, label in parts:
        src = f"{name}/{filename}"
        t = _read_delimited(
            root / filename,
            _U_DATA_FIELDS,
            encoding="latin-1",
            report=report,
            source=src,
            split=lambda s: s.split("\t"),
        )
        df = _ratings(t, _U_DATA_FIELDS, (1.0, 5.0), report, src)
        df = _drop_unknown_items(df, items, "u.item", report, src)
        frames.append(df)
        labels.append(np.full(len(df), label, dtype=object))
    inter = pd.concat(frames, ignore_index=True)
    split = pd.Series(np.concatenate(labels), name="split") if key is not None else None
    _log_summary(name if key is None else f"{name} fold {key}", inter, items)
    return RawDataset(
        name, inter, items, has_ratings=True, rating_scale=(1.0, 5.0), split=split, report=report
    )


# --------------------------------------------------------------------------------------------------------------
# ml-1m
# --------------------------------------------------------------------------------------------------------------

_ML1M_RATING_FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")
_ML1M_MOVIE_FIELDS = ("MovieID", "Title", "Genres")


def _split_movie_line(line: str) -> list[str]:
    """``MovieID::Title::Genres``; a title may itself contain ``::`` or end with ``:``, so split at both ends."""
    head, sep, rest = line.partition("::")
    if not sep:
        return [head]
    title, sep, genres = rest.rpartition("::")
    return [head, title, genres] if sep else [head, rest]


def read_ml_1m(root: Path | str) -> RawDataset:
    """Read MovieLens 1M: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and ``movies.dat``.

    Both files are Latin-1; ``movies.dat`` lines are ``MovieID::Title::Genres`` with ``|``-separated genres.

    Returns:
        Ratings 1-5; ``items`` has one row per movie of ``movies.dat``.
    """
    root = Path(root)
    name = "ml-1m"
    report = DropReport()

    src = f"{name}/movies.dat"
    mt = _read_delimited(
        root / "movies.dat",
        _ML1M_MOVIE_FIELDS,
        encoding="latin-1",
        report=report,
        source=src,
        split=_split_movie_line,
    )
    genres = [[g.strip() for g in s.split("|") if g.strip()] for s in mt.frame["Genres"]]
    items = _items(_parse_ids(mt, "MovieID"), list(mt.frame["Title"]), genres, {}, mt, report, src)

    src = f"{name}/ratings.dat"
    rt = _read_delimited(
        root / "ratings.dat",
        _ML1M_RATING_FIELDS,
        encoding="latin-1",
        report=report,
        source=src,
        split=lambda s: s.split("::"),
    )
    inter = _ratings(rt, _ML1M_RATING_FIELDS, (1.0, 5.0), report, src)
    inter = _drop_unknown_items(inter, items, "movies.dat", report, src)
    _log_summary(name, inter, items)
    return RawDataset(name, inter, items, has_ratings=True, rating_scale=(1.0, 5.0), report=report)


def _log_summary(name: str, inter: pd.DataFrame, items: pd.DataFrame) -> None:
    log.info(
        "%s: %d ratings, %d users, %d rated movies, %d movies in the catalogue",
        name,
        len(inter),
        inter["user"].nunique(),
        inter["item"].nunique(),
        len(items),
    )


__all__ = [
    "MAX_TAGS",
    "ML100K_FOLDS",
    "clean_title",
    "item_text",
    "read_ml_100k",
    "read_ml_1m",
    "read_ml_latest_small",
]
