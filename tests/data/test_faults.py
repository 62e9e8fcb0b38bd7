"""Fault matrix: every reader x every file it reads x every kind of damage ends in a typed error naming the file.

The faults are made at test time from the small fixtures in ``tests/fixtures`` (copied into ``tmp_path``;
nothing corrupt is committed). Compressed files (``.json.gz``, ``.nt.bz2``) are damaged in their
decompressed text and compressed again, except "truncated mid-line", which cuts the compressed bytes
themselves (a copy interrupted half way).

Expected outcomes (all subclasses of :class:`~recsys_gnn.data.errors.DataError`):

=====================  ===========================================================================
truncated mid-line     :class:`TruncatedFileError`
truncated mid-field    :class:`TruncatedFileError` naming the line (the last field of the last line cut)
empty                  :class:`EmptyFileError`
header only            :class:`EmptyFileError` for files with a header; a :class:`SchemaError`
                       naming line 1 for headerless files (the "header" is a line of column names)
wrong encoding         :class:`FileEncodingError` (the file re-encoded as UTF-16)
missing column         :class:`SchemaError` (named column for files with a header, field count else)
out-of-range value     :class:`SchemaError` naming line 2 and the value (where the file has a value
                       with a range: ratings, ids, flags, labels, indices)
missing file           :class:`DatasetNotFoundError` naming the file
=====================  ===========================================================================
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys_gnn.data.errors import (
    DataError,
    DatasetNotFoundError,
    EmptyFileError,
    FileEncodingError,
    SchemaError,
    TruncatedFileError,
)
from recsys_gnn.data.readers.amazon import read_amazon_5core, read_amazon_ratings
from recsys_gnn.data.readers.lastfm import read_lastfm
from recsys_gnn.data.readers.mind import read_mind
from recsys_gnn.data.readers.movielens import read_ml_1m, read_ml_100k, read_ml_latest_small
from recsys_gnn.data.readers.nemig import nemig_files, read_nemig
from recsys_gnn.data.readers.unisrec import read_unisrec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

READERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "ml-latest-small": ("movielens-latest-small", read_ml_latest_small),
    "ml-100k": ("movielens-100k", read_ml_100k),
    "ml-100k-fold1": ("movielens-100k", lambda root: read_ml_100k(root, fold=1)),
    "ml-1m": ("ml-1m", read_ml_1m),
    "lastfm": ("lastfm", read_lastfm),
    "amazon-5core": ("amazon", lambda root: read_amazon_5core(root, "Fixture_Magazines")),
    "amazon-ratings": ("amazon", lambda root: read_amazon_ratings(root, "Fixture_Magazines")),
    "unisrec": ("unisrec", lambda root: read_unisrec(root, "Tiny")),
    "mind": ("mind", read_mind),
    "nemig": ("nemig", lambda root: read_nemig(root, "en")),
}


@dataclass(frozen=True)
class Target:
    """One file a reader reads, and how to damage it.

    Attributes:
        reader: key of :data:`READERS`.
        file: path relative to the fixture folder.
        fmt: "delimited" (``sep``-separated lines), "csv" (RFC-4180 with header), "jsonl" or "nt".
        sep: field separator of "delimited" files.
        header: whether the file starts with a header line.
        drop: for files with a header, the required column removed by "missing column"; for JSON lines,
            the required key removed from every object.
        header_line: for headerless files, the line of column names written by "header only".
        bad: (field index or JSON key, value) written on file line 2 by "out-of-range value"; None when
            the file holds no value with a range (free text, N-Triples).
        bad_has_line: whether the out-of-range error can name its line.
    """

    reader: str
    file: str
    fmt: str
    sep: str = "\t"
    header: bool = False
    drop: str = ""
    header_line: str = ""
    bad: tuple[int | str, object] | None = None
    bad_has_line: bool = True

    @property
    def id(self) -> str:
        return f"{self.reader}:{self.file}"


_NEMIG = nemig_files("en")

TARGETS = [
    # MovieLens latest-small: UTF-8 CSV with header
    Target("ml-latest-small", "ratings.csv", "csv", ",", True, "rating", bad=(2, "9.0")),
    Target("ml-latest-small", "movies.csv", "csv", ",", True, "title", bad=(0, "-1")),
    Target("ml-latest-small", "tags.csv", "csv", ",", True, "tag", bad=(0, "-3")),
    # MovieLens 100K: headerless, Latin-1
    Target("ml-100k", "u.data", "delimited", "\t", header_line="user id\titem id\trating\ttimestamp", bad=(2, "9")),
    Target("ml-100k", "u.item", "delimited", "|", header_line="movie id|movie title|release date", bad=(6, "2")),
    Target("ml-100k", "u.genre", "delimited", "|", header_line="genre|index", bad=(1, "99"), bad_has_line=False),
    Target("ml-100k-fold1", "u1.base", "delimited", "\t", header_line="user id\titem id\trating\ttimestamp", bad=(2, "0")),
    Target("ml-100k-fold1", "u1.test", "delimited", "\t", header_line="user id\titem id\trating\ttimestamp", bad=(2, "6")),
    # MovieLens 1M: headerless, '::'-separated
    Target("ml-1m", "ratings.dat", "delimited", "::", header_line="UserID::MovieID::Rating::Timestamp", bad=(2, "7")),
    Target("ml-1m", "movies.dat", "delimited", "::", header_line="MovieID::Title::Genres", bad=(0, "-1")),
    # HetRec Last.fm: TAB-separated with header
    Target("lastfm", "user_artists.dat", "delimited", "\t", True, "weight", bad=(2, "-5")),
    Target("lastfm", "artists.dat", "delimited", "\t", True, "name", bad=(0, "-2")),
    Target("lastfm", "tags.dat", "delimited", "\t", True, "tagValue", bad=(0, "-1")),
    Target("lastfm", "user_taggedartists.dat", "delimited", "\t", True, "tagID", bad=(2, "-1")),
    # Amazon 2018: gzip JSON lines, and the headerless ratings-only CSV
    Target("amazon-5core", "Fixture_Magazines_5.json.gz", "jsonl", drop="overall", bad=("overall", 9.0)),
    Target("amazon-5core", "meta_Fixture_Magazines.json.gz", "jsonl", drop="asin", bad=("asin", "")),
    Target("amazon-ratings", "Fixture_Magazines.csv", "delimited", ",", header_line="item,user,rating,timestamp", bad=(2, "9.0")),
    # UniSRec: headerless index maps, TAB-separated text and .inter files with header
    Target("unisrec", "Tiny.item2index", "delimited", "\t", header_line="item_id\tindex", bad=(1, "-1")),
    Target("unisrec", "Tiny.user2index", "delimited", "\t", header_line="user_id\tindex", bad=(1, "x")),
    Target("unisrec", "Tiny.text", "delimited", "\t", True, "text:token_seq"),
    Target("unisrec", "Tiny.train.inter", "delimited", "\t", True, "item_id:token", bad=(2, "99")),
    Target("unisrec", "Tiny.valid.inter", "delimited", "\t", True, "item_id:token", bad=(2, "99")),
    Target("unisrec", "Tiny.test.inter", "delimited", "\t", True, "item_id:token", bad=(0, "77")),
    # MIND: headerless TAB-separated
    Target("mind", "train/behaviors.tsv", "delimited", "\t", header_line="impression_id\tuser_id\ttime\thistory\timpressions", bad=(4, "N3-2")),
    Target("mind", "train/news.tsv", "delimited", "\t", header_line="news_id\tcategory\tsubcategory\ttitle\tabstract\turl\ttitle_entities\tabstract_entities"),
    Target("mind", "dev/behaviors.tsv", "delimited", "\t", header_line="impression_id\tuser_id\ttime\thistory\timpressions", bad=(2, "13/45/2019 9:00:00 AM")),
    Target("mind", "dev/news.tsv", "delimited", "\t", header_line="news_id\tcategory\tsubcategory\ttitle\tabstract\turl\ttitle_entities\tabstract_entities"),
    # NeMig: MIND-format behaviors without time, N-Triples (bzip2), CSV with header
    Target("nemig", _NEMIG["behaviors"], "delimited", "\t", header_line="impression_id\tuser_id\thistory\timpressions", bad=(3, "news_3-7")),
    Target("nemig", _NEMIG["content_mapping"], "nt"),
    Target("nemig", _NEMIG["content_literals"], "nt"),
    Target("nemig", _NEMIG["subtopic_mapping"], "nt"),
    Target("nemig", _NEMIG["subtopic_labels"], "csv", ",", True, "topic_label", bad=(1, "-7")),
]  # fmt: skip

FAULTS = (
    "truncated_mid_line",
    "truncated_mid_field",
    "empty",
    "header_only",
    "wrong_encoding",
    "missing_column",
    "out_of_range",
    "missing_file",
)

# Latin-1 is the official encoding of these; everything else is UTF-8.
_LATIN1 = {"u.data", "u.item", "u.genre", "u1.base", "u1.test", "ratings.dat", "movies.dat", "tags.dat"}


# --------------------------------------------------------------------------------------------------------------
# Damage
# --------------------------------------------------------------------------------------------------------------


def _encoding(path: Path) -> str:
    return "latin-1" if path.name in _LATIN1 else "utf-8"


def _compression(path: Path) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]] | None:
    if path.suffix == ".gz":
        return gzip.decompress, lambda b: gzip.compress(b, mtime=0)
    if path.suffix == ".bz2":
        return bz2.decompress, bz2.compress
    return None


def _read(path: Path) -> bytes:
    codec = _compression(path)
    return codec[0](path.read_bytes()) if codec else path.read_bytes()


def _write(path: Path, data: bytes) -> None:
    codec = _compression(path)
    path.write_bytes(codec[1](data) if codec else data)


def _lines(text: str) -> list[tuple[str, str]]:
    """``(line, ending)`` pairs, the ending ``"\\r\\n"``, ``"\\n"`` or ``""``."""
    out = []
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        out.append((body, raw[len(body) :]))
    return out


def _join(lines: list[tuple[str, str]]) -> str:
    return "".join(body + end for body, end in lines)


def _cut_mid_line(data: bytes) -> bytes:
    """The first half of ``data``, moved forward so that the cut is inside a line."""
    pos = len(data) // 2
    while pos < len(data) and (
        data[pos - 1 : pos] in (b"\n", b"\r") or data[pos : pos + 1] in (b"\n", b"\r")
    ):
        pos += 1
    return data[:pos]


def _drop_column(t: Target, text: str) -> str:
    if t.fmt == "jsonl":
        out = []
        for body, end in _lines(text):
            rec = json.loads(body)
            rec.pop(t.drop, None)
            out.append((json.dumps(rec), end))
        return _join(out)
    if t.fmt == "nt":  # drop the predicate of every statement
        return re.sub(r"^(<[^>]*>) <[^>]*> ", r"\1 ", text, flags=re.MULTILINE)
    if t.fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        k = rows[0].index(t.drop)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([r[:k] + r[k + 1 :] for r in rows])
        return buf.getvalue()
    lines = _lines(text)
    if t.header:
        k = lines[0][0].split(t.sep).index(t.drop)
    else:
        k = -1  # headerless: the last field of every line
    out = []
    for body, end in lines:
        fields = body.split(t.sep)
        del fields[k if k >= 0 else len(fields) - 1]
        out.append((t.sep.join(fields), end))
    return _join(out)


def _set_value(t: Target, text: str) -> str:
    """Write ``t.bad`` on file line 2."""
    assert t.bad is not None
    key, value = t.bad
    lines = _lines(text)
    body, end = lines[1]
    if t.fmt == "jsonl":
        rec = json.loads(body)
        rec[key] = value
        lines[1] = (json.dumps(rec), end)
    else:
        fields = body.split(t.sep)
        fields[int(key)] = str(value)
        lines[1] = (t.sep.join(fields), end)
    return _join(lines)


def damage(t: Target, path: Path, fault: str) -> None:
    """Apply ``fault`` to ``path`` (a copy of the fixture file)."""
    enc = _encoding(path)
    if fault == "missing_file":
        path.unlink()
    elif fault == "truncated_mid_line":
        path.write_bytes(_cut_mid_line(path.read_bytes()))  # compressed files: the compressed bytes
    elif fault == "truncated_mid_field":
        data = _read(path).rstrip(b"\r\n")
        _write(path, data[:-2])
    elif fault == "empty":
        _write(path, b"")
    elif fault == "header_only":
        if t.header:
            first = _lines(_read(path).decode(enc))[0]
            _write(path, (first[0] + first[1]).encode(enc))
        elif t.fmt == "jsonl":
            _write(path, (json.dumps(["reviewerID", "asin", "overall", "unixReviewTime"]) + "\n").encode())
        elif t.fmt == "nt":
            _write(path, b"# subject predicate object\n")
        else:
            _write(path, (t.header_line + "\n").encode(enc))
    elif fault == "wrong_encoding":
        _write(path, _read(path).decode(enc).encode("utf-16"))
    elif fault == "missing_column":
        _write(path, _drop_column(t, _read(path).decode(enc)).encode(enc))
    elif fault == "out_of_range":
        _write(path, _set_value(t, _read(path).decode(enc)).encode(enc))
    else:
        raise AssertionError(fault)


# --------------------------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"(line \d+|:\d+:)")


def expected_error(t: Target, fault: str) -> tuple[type[DataError], str | None]:
    """(error type, line mention the message must hold or None)."""
    if fault == "missing_file":
        return DatasetNotFoundError, None
    if fault == "truncated_mid_line":
        return TruncatedFileError, None
    if fault == "truncated_mid_field":
        return TruncatedFileError, "any"
    if fault == "empty":
        return EmptyFileError, None
    if fault == "header_only":
        if t.header or t.fmt == "nt":
            return EmptyFileError, None
        return SchemaError, "1"
    if fault == "wrong_encoding":
        return FileEncodingError, None
    if fault == "missing_column":
        return SchemaError, None
    if fault == "out_of_range":
        return SchemaError, "2" if t.bad_has_line else None
    raise AssertionError(fault)


CASES = [
    pytest.param(t, fault, id=f"{t.id}-{fault}")
    for t in TARGETS
    for fault in FAULTS
    if not (fault == "out_of_range" and t.bad is None)
]


def _copy(t: Target, tmp_path: Path) -> Path:
    folder, _ = READERS[t.reader]
    root = tmp_path / folder
    shutil.copytree(FIXTURES / folder, root)
    return root


@pytest.mark.parametrize("reader", sorted(READERS))
def test_undamaged_fixture_reads(reader: str, tmp_path: Path) -> None:
    """The baseline: every fixture folder reads without error, so each failure below is the fault's."""
    folder, read = READERS[reader]
    shutil.copytree(FIXTURES / folder, tmp_path / folder)
    ds = read(tmp_path / folder)
    assert len(ds.interactions) > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("t", "fault"), CASES)
def test_fault_is_a_typed_error_naming_the_file(t: Target, fault: str, tmp_path: Path) -> None:
    root = _copy(t, tmp_path)
    path = root / t.file
    damage(t, path, fault)
    kind, line = expected_error(t, fault)
    _, read = READERS[t.reader]
    with pytest.raises(DataError) as err:
        read(root)
    msg = str(err.value)
    assert isinstance(err.value, kind), f"{type(err.value).__name__} is not a {kind.__name__}: {msg}"
    assert str(path) in msg, msg
    if line == "any":
        assert _LINE_RE.search(msg), msg
    elif line is not None:
        assert re.search(rf"(line {line}\b|:{line}:)", msg), msg
    if fault == "missing_column" and (t.header or t.fmt == "jsonl"):
        assert t.drop in msg, msg
    if fault == "out_of_range":
        assert str(t.bad[1]) in msg or repr(t.bad[1]) in msg, msg  # type: ignore[index]


def test_every_reader_and_fault_is_covered() -> None:
    readers = {t.reader for t in TARGETS}
    assert readers == set(READERS)
    for r in readers:
        faults = {
            f for t in TARGETS if t.reader == r for f in FAULTS if not (f == "out_of_range" and t.bad is None)
        }
        assert faults == set(FAULTS), r


# --------------------------------------------------------------------------------------------------------------
# The staged real files (RECSYS_GNN_RAW): a copy cut at half its bytes is refused by the reader itself too
# --------------------------------------------------------------------------------------------------------------

REAL_CUTS = [
    ("ml-latest-small", "ratings.csv", read_ml_latest_small),
    ("ml-100k", "u.data", read_ml_100k),
    ("hetrec2011-lastfm-2k", "user_artists.dat", read_lastfm),
    ("amazon2018", "Gift_Cards_5.json.gz", lambda root: read_amazon_5core(root, "Gift_Cards")),
    ("amazon2018", "Magazine_Subscriptions.csv", lambda root: read_amazon_ratings(root, "Magazine_Subscriptions")),
    ("unisrec-scientific", "Scientific.test.inter", read_unisrec),
    ("nemig", _NEMIG["behaviors"], read_nemig),
    ("nemig", _NEMIG["content_literals"], read_nemig),
]  # fmt: skip


@pytest.mark.parametrize(("folder", "member", "read"), REAL_CUTS, ids=[f"{f}:{m}" for f, m, _ in REAL_CUTS])
def test_real_file_cut_at_half_is_refused_by_its_reader(
    folder: str, member: str, read: Callable[[Path], object], tmp_path: Path
) -> None:
    """Without the registry check (as with RECSYS_GNN_ALLOW_UNVERIFIED=1), the reader still refuses."""
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw or not (Path(raw) / folder).is_dir():
        pytest.skip("RECSYS_GNN_RAW with this dataset is not available")
    src = Path(raw) / folder
    root = tmp_path / folder
    for f in src.rglob("*"):
        if f.is_file() and not f.name.endswith(".md"):
            (root / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            if f.relative_to(src).as_posix() == member:
                data = f.read_bytes()
                (root / member).write_bytes(data[: len(data) // 2])
            else:
                (root / f.relative_to(src)).symlink_to(f)
    with pytest.raises(TruncatedFileError) as err:
        read(root)
    assert str(root / member) in str(err.value)
