"""Reader for HetRec 2011 Last.fm 2K (user-artist play counts; artists described by name and user tags).

Official archive: https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip. All files are
TAB-separated with one header line and no quoting (artist names contain ``"``). Encodings differ, as in the
original: ``artists.dat`` is UTF-8 (LF), ``tags.dat`` is Latin-1 (CRLF), the others are ASCII (CRLF).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import ConfigError, SchemaError
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.text import clean_text, join_fields
from recsys_gnn.data.schema import DropReport, RawDataset, make_interactions, require_columns

log = logging.getLogger(__name__)

USER_ARTISTS = "user_artists.dat"
ARTISTS = "artists.dat"
TAGS = "tags.dat"
TAGGED = "user_taggedartists.dat"


def read_lastfm(root: Path, max_tags: int = 10) -> RawDataset:
    """Read Last.fm 2K play counts and artist texts.

    Interactions are ``user_artists.dat`` rows: ``weight`` = play count, ``rating`` NaN, ``timestamp`` -1
    (the file has no time; tag-assignment dates say when a user tagged, not when they listened). An
    artist's text is its name followed by its ``max_tags`` most frequent tags (number of users who applied
    the tag, ties by tag id), e.g. ``"Duran Duran. Tags: 80s, new wave, pop"``; a tag equal to the artist's
    own name is skipped since it adds nothing.

    Repairs counted in ``report``: exact duplicate rows, interactions/tag assignments whose artist or tag is
    not listed, artists without any text. A truncated file (last line without its line ending or with too
    few fields) is refused, as are empty and header-only files (:mod:`recsys_gnn.data.readers.rawfile`).

    Args:
        root: folder holding the extracted archive files.
        max_tags: tags per artist text; 0 uses names only (tags files are then not read).

    Returns:
        RawDataset ``lastfm``: 92,834 interactions, 1,892 users, 17,632 artists on the official files.

    Raises:
        DatasetNotFoundError: a needed file is missing.
        SchemaError: a column is missing, a value does not parse, an encoding is wrong, or a user-artist
            pair appears twice with different play counts; :class:`TruncatedFileError`,
            :class:`EmptyFileError` and :class:`FileEncodingError` (all SchemaErrors) for cut, empty and
            UTF-16 files.
        ConfigError: ``max_tags`` is negative.
    """
    if max_tags < 0:
        raise ConfigError(f"lastfm: max_tags must be >= 0, got {max_tags}")
    root = Path(root)
    report = DropReport()

    ua = _read_dat(root / USER_ARTISTS, "utf-8", ("userID", "artistID", "weight"), report)
    ua = _parse_ints(ua, root / USER_ARTISTS, ("userID", "artistID", "weight"), report)
    bad_w = ua["weight"] < 0
    if bad_w.any():
        row = ua[bad_w].iloc[0]
        raise SchemaError(
            f"{root / USER_ARTISTS}: line {row['_line']}: weight {row['weight']} is negative; "
            "expected a play count >= 0"
        )
    ua = _drop_duplicates(ua, ["userID", "artistID"], root / USER_ARTISTS, report)

    artists = _read_dat(root / ARTISTS, "utf-8", ("id", "name"), report)
    artists = _parse_ints(artists, root / ARTISTS, ("id",), report)
    artists["name"] = artists["name"].map(clean_text)
    artists = _drop_duplicates(artists[["id", "name", "_line"]], ["id"], root / ARTISTS, report)

    known = ua["artistID"].isin(artists["id"])
    report.add("interactions with an artist not in artists.dat (dropped)", int((~known).sum()), USER_ARTISTS)
    ua = ua[known]

    tags = _artist_tags(root, artists, max_tags, report) if max_tags > 0 else {}
    names = dict(zip(artists["id"], artists["name"], strict=True))
    used = pd.unique(ua["artistID"])
    texts = {a: join_fields(names[a], "Tags: " + ", ".join(tags[a]) if tags.get(a) else None) for a in used}
    no_text = {a for a, t in texts.items() if not t}
    if no_text:
        has = ~ua["artistID"].isin(no_text)
        report.add("interactions of artists with no name and no tags (dropped)", int((~has).sum()), ARTISTS)
        ua = ua[has]
    used = [a for a in used if a not in no_text]

    interactions = make_interactions(
        ua["userID"].to_numpy(), ua["artistID"].to_numpy(), weight=ua["weight"].to_numpy(dtype=np.float64)
    )
    items = pd.DataFrame(
        {
            "item": [str(a) for a in used],
            "title": [names[a] for a in used],
            "text": [texts[a] for a in used],
        }
    )
    log.info(
        "lastfm: %d interactions, %d users, %d artists (%d with tags)",
        len(interactions),
        interactions["user"].nunique(),
        len(items),
        sum(1 for a in used if tags.get(a)),
    )
    return RawDataset(
        name="lastfm",
        interactions=interactions,
        items=items,
        has_ratings=False,
        rating_scale=None,
        report=report,
    )


def _artist_tags(
    root: Path, artists: pd.DataFrame, max_tags: int, report: DropReport
) -> dict[int, list[str]]:
    """Most frequent tags of each artist: ``{artist id: [tag, ...]}`` (at most ``max_tags`` each)."""
    # The official tags.dat is Latin-1; a re-encoded UTF-8 copy is also accepted (see _decode).
    tags = _read_dat(root / TAGS, ("utf-8", "latin-1"), ("tagID", "tagValue"), report)
    tags = _parse_ints(tags, root / TAGS, ("tagID",), report)
    tags["tagValue"] = tags["tagValue"].map(clean_text)
    tags = _drop_duplicates(tags[["tagID", "tagValue", "_line"]], ["tagID"], root / TAGS, report)
    tags = tags[tags["tagValue"] != ""]

    ta = _read_dat(root / TAGGED, "utf-8", ("userID", "artistID", "tagID"), report)
    ta = _parse_ints(ta, root / TAGGED, ("userID", "artistID", "tagID"), report)
    ta = _drop_duplicates(ta[["userID", "artistID", "tagID", "_line"]], None, root / TAGGED, report)
    known_artist = ta["artistID"].isin(artists["id"])
    report.add("tag assignments for artists not in artists.dat (dropped)", int((~known_artist).sum()), TAGGED)
    known_tag = ta["tagID"].isin(tags["tagID"])
    report.add(
        "tag assignments with a tag not in tags.dat or an empty tag (dropped)",
        int((known_artist & ~known_tag).sum()),
        TAGGED,
    )
    ta = ta[known_artist & known_tag]

    # Tag ids whose values clean to the same text count together, so group by value (first id breaks ties).
    ta = ta.merge(tags[["tagID", "tagValue"]], on="tagID")
    counts = (
        ta.groupby(["artistID", "tagValue"], sort=False)
        .agg(n=("userID", "size"), first_id=("tagID", "min"))
        .reset_index()
        .sort_values(["artistID", "n", "first_id"], ascending=[True, False, True], kind="stable")
    )
    names = dict(zip(artists["id"], artists["name"].str.casefold(), strict=True))
    counts = counts[counts["tagValue"].str.casefold() != counts["artistID"].map(names)]
    return {a: g["tagValue"].head(max_tags).tolist() for a, g in counts.groupby("artistID", sort=False)}


def _decode(path: Path, encodings: str | Sequence[str]) -> str:
    """Decode ``path`` with the first of ``encodings`` that fits; the last one is the official encoding.

    Raises:
        DatasetNotFoundError: the file does not exist.
        SchemaError: no encoding fits (names the line and byte offset of the first bad byte), or the file
            is UTF-16, empty or cut mid-line.
    """
    data = rawfile.require_file(path, "the official hetrec2011-lastfm-2k file").read_bytes()
    text = rawfile.decode(path, data, encodings)
    rawfile.check_not_empty(path, text, "a TAB-separated header line and data rows")
    rawfile.check_final_newline(path, text)
    return text


def _read_dat(
    path: Path, encodings: str | Sequence[str], columns: tuple[str, ...], report: DropReport
) -> pd.DataFrame:
    """Read a TAB-separated HetRec file with a header line into strings plus its 1-based ``_line`` numbers.

    A last line with too few fields is a cut-off file (:class:`TruncatedFileError`); any other line with the
    wrong number of fields is a :class:`SchemaError`; a header without rows an :class:`EmptyFileError`.
    """
    lines = _decode(path, encodings).splitlines()
    header = lines[0].split("\t")
    require_columns(pd.DataFrame(columns=header), columns, str(path))
    n = len(header)
    rows: list[list[str]] = []
    numbers: list[int] = []
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=0)
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != n:
            if i == last and len(fields) < n:
                raise rawfile.truncated_last_line(path, i + 1, len(fields), n, header)
            raise SchemaError(
                f"{path}: line {i + 1}: expected {n} TAB-separated fields {header}, found {len(fields)}: "
                f"{line[:100]!r}"
            )
        rows.append(fields)
        numbers.append(i + 1)
    if not rows:
        raise rawfile.no_data_rows(path, f"TAB-separated rows of {list(columns)}")
    df = (
        pd.DataFrame(rows, columns=header, dtype=object)
        if rows
        else pd.DataFrame(columns=header, dtype=object)
    )
    df["_line"] = np.asarray(numbers, dtype=np.int64)
    return df


def _parse_ints(df: pd.DataFrame, path: Path, columns: Sequence[str], report: DropReport) -> pd.DataFrame:
    """Parse ``columns`` as integers >= 0; any other value is a :class:`SchemaError`."""
    parsed = {c: pd.to_numeric(df[c].str.strip(), errors="coerce") for c in columns}
    bad = np.zeros(len(df), dtype=bool)
    for c in columns:
        v = parsed[c]
        bad |= (v.isna() | (v != v.round()) | (v < 0)).to_numpy()
    if bad.any():
        examples = []
        for c in columns:
            v = parsed[c]
            for _, r in df[(v.isna() | (v != v.round()) | (v < 0)).to_numpy()].head(3).iterrows():
                examples.append(f"line {r['_line']} column {c}={r[c]!r}")
        raise SchemaError(
            f"{path}: {int(bad.sum())} value(s) are not integers >= 0 (ids, play counts): "
            f"{'; '.join(examples[:3])}"
        )
    out = df.loc[~bad].copy()
    for c in columns:
        out[c] = parsed[c][~bad].astype(np.int64)
    return out


def _drop_duplicates(df: pd.DataFrame, key: list[str] | None, path: Path, report: DropReport) -> pd.DataFrame:
    """Drop exact duplicate rows (counted); the same ``key`` with different values is an error."""
    value_cols = [c for c in df.columns if c != "_line"]
    exact = df.duplicated(value_cols)
    report.add("exact duplicate rows (dropped)", int(exact.sum()), path.name)
    df = df[~exact]
    if key is not None:
        clash = df.duplicated(key, keep=False)
        if clash.any():
            rows = df[clash].sort_values([*key, "_line"]).head(2)
            desc = "; ".join(f"line {r['_line']}: {dict(r[value_cols])}" for _, r in rows.iterrows())
            raise SchemaError(
                f"{path}: {key} must be unique, but the same key has different values ({desc}); "
                "the official file has one row per key"
            )
    return df
