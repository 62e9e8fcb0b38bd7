"""NeMig (news about migration, English and German): user-study clicks and impressions, text from its KG.

Files (https://github.com/andreeaiana/nemig, ``data/`` folder; relative to the dataset root):

* ``<lang>/user_data/behaviors.tsv``: MIND's behaviors format without the time column (read with
  :func:`recsys_gnn.data.readers.mind.read_behaviors`). Each study participant has one click history and
  (in the released data) 5 impressions; rows are shuffled and there are no timestamps.
* ``<lang>/kg/nemig_<lang>_base-instances_content_mapping.nt.bz2``: ``news_N schema:hasPart
  news_title_N / news_abstract_N``.
* ``<lang>/kg/nemig_<lang>_base-instances_content_literals.nt.bz2``: ``schema:headline`` and
  ``schema:abstract`` literals of those parts; some literals contain raw line breaks.
* ``<lang>/kg/nemig_<lang>_base-instances_subtopic_mapping.nt.bz2``: ``news_N schema:about news_topic_T``.
* ``<lang>/cache/subtopic_annotations.csv``: ``id,topic,topic_label``; the label of topic T (BERTopic
  keywords joined by ``_``).

Protocol of :func:`read_nemig` (NeMig has no timestamps, so no temporal split exists):

* each user's impressions are ordered by impression id (the study assigns a user's impressions
  consecutive ids; the file order is shuffled), or by file line with ``holdout_order="file"``;
* the last impression is "test", the one before is "val" if the user has at least 3 impressions, the others
  are "train"; click-history news are "train" clicks (timestamp -1);
* interactions are clicks as in :mod:`recsys_gnn.data.readers.mind`: a news a user clicks again is one
  interaction with the earliest split (history, then train, val, test) and weight = number of clicks;
* items are the news referenced by the behaviors file; text is headline, abstract and subtopic label
  (topic -1, BERTopic's bucket of unassigned articles, gives none), cleaned and joined with
  :func:`recsys_gnn.data.readers.text.join_fields` (the literals' raw line breaks become single spaces).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from recsys_gnn.data.errors import (
    ConfigError,
    DatasetNotFoundError,
    EmptyFileError,
    SchemaError,
    TruncatedFileError,
)
from recsys_gnn.data.readers import rawfile
from recsys_gnn.data.readers.mind import build_news_dataset, read_behaviors
from recsys_gnn.data.readers.text import clean_text, join_fields
from recsys_gnn.data.schema import DropReport, RawDataset, require_columns

log = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("en", "de")
HOLDOUT_ORDERS: tuple[str, ...] = ("impression_id", "file")
SCHEMA = "https://schema.org/"
HAS_PART = SCHEMA + "hasPart"
HEADLINE = SCHEMA + "headline"
ABSTRACT = SCHEMA + "abstract"
ABOUT = SCHEMA + "about"
# BERTopic puts articles it cannot assign to a topic into topic -1: its "label" is not a subject
OUTLIER_TOPIC = "-1"


def nemig_files(language: str) -> dict[str, str]:
    """Paths, relative to the dataset root, of the files :func:`read_nemig` reads for ``language``.

    Raises:
        ConfigError: ``language`` is not one of :data:`LANGUAGES`.
    """
    if language not in LANGUAGES:
        raise ConfigError(f"NeMig language {language!r} is not one of {list(LANGUAGES)}")
    kg = f"{language}/kg/nemig_{language}_base-instances"
    return {
        "behaviors": f"{language}/user_data/behaviors.tsv",
        "content_mapping": f"{kg}_content_mapping.nt.bz2",
        "content_literals": f"{kg}_content_literals.nt.bz2",
        "subtopic_mapping": f"{kg}_subtopic_mapping.nt.bz2",
        "subtopic_labels": f"{language}/cache/subtopic_annotations.csv",
    }


# ---------------------------------------------------------------------------------------------------------
# N-Triples (https://www.w3.org/TR/n-triples/). NeMig's literals may hold raw line breaks, which the
# standard forbids; the literal rule below accepts them, everything else follows the grammar.


class Triple(NamedTuple):
    """One N-Triples statement. IRIs without ``<>``; blank nodes as ``_:label``; literals unescaped."""

    subject: str
    predicate: str
    object: str
    is_literal: bool = False
    lang: str | None = None
    datatype: str | None = None


_UCHAR = r"\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}"
_IRI = re.compile(r"<((?:[^\x00-\x20<>\"{}|^`\\]|" + _UCHAR + r")*)>")
_BNODE = re.compile(
    r"_:([A-Za-z0-9_\u00c0-\U000effff](?:[A-Za-z0-9_.\-\u00b7\u00c0-\U000effff]*[A-Za-z0-9_\-\u00b7\u00c0-\U000effff])?)"
)
_LITERAL = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_LANG = re.compile(r"@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)")
_WS = re.compile(r"[ \t]*")
_END = re.compile(r"[ \t]*\.[ \t]*(?:#[^\r\n]*)?(?:\r?\n|\r|\Z)")
_SKIP = re.compile(r"(?:[ \t]*(?:#[^\r\n]*)?(?:\r?\n|\r))+|[ \t]*(?:#[^\r\n]*)?\Z")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_ECHAR = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESCAPES_ALLOWED = r"\t \b \n \r \f \" \' \\ \uXXXX \UXXXXXXXX"


def _unescape(s: str, allow_echar: bool) -> str:
    """Resolve UCHAR (and, in literals, ECHAR) escapes; UTF-16 surrogate pairs are joined.

    Raises:
        ValueError: an invalid escape (the caller adds file and line).
    """
    if "\\" not in s:
        return s

    def repl(m: re.Match[str]) -> str:
        if m.group(1) or m.group(2):
            code = int(m.group(1) or m.group(2), 16)
            if code > 0x10FFFF:
                raise ValueError(f"escape {m.group(0)!r} is beyond U+10FFFF")
            return chr(code)
        if allow_echar and m.group(3) in _ECHAR:
            return _ECHAR[m.group(3)]
        raise ValueError(f"invalid escape {m.group(0)!r}; expected one of {_ESCAPES_ALLOWED}")

    out = _ESCAPE.sub(repl, s)
    if any("\ud800" <= ch <= "\udfff" for ch in out):
        # some writers escape non-BMP characters as two \u surrogates
        out = out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return out


def parse_ntriples(text: str, source: str = "<string>") -> Iterator[Triple]:
    """Parse N-Triples ``text`` statement by statement.

    Accepts everything the W3C grammar does (IRIs, blank nodes, literals with ``@lang`` or ``^^<datatype>``,
    ``\\t \\b \\n \\r \\f \\" \\' \\\\ \\uXXXX \\UXXXXXXXX`` escapes, comments) plus raw line breaks inside
    literals.

    Raises:
        SchemaError: naming ``source``, line and column of the first syntax error.
    """
    pos, n = 0, len(text)

    def fail(what: str, at: int) -> SchemaError:
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        return SchemaError(f"{source}:{line}:{col}: expected {what}, found {text[at : at + 40]!r}")

    def unescape(s: str, allow_echar: bool, at: int) -> str:
        try:
            return _unescape(s, allow_echar)
        except ValueError as e:
            raise SchemaError(f"{source}:{text.count(chr(10), 0, at) + 1}: {e}") from e

    def iri(at: int) -> tuple[str, int] | None:
        m = _IRI.match(text, at)
        return (unescape(m.group(1), False, at), m.end()) if m else None

    while pos < n:
        m = _SKIP.match(text, pos)
        if m and m.end() > pos:
            pos = m.end()
            continue
        pos = _WS.match(text, pos).end()
        term = iri(pos)
        if term is None:
            m = _BNODE.match(text, pos)
            if m is None:
                raise fail("a subject (<iri> or _:blank)", pos)
            term = ("_:" + m.group(1), m.end())
        subject, pos = term
        pos = _WS.match(text, pos).end()
        term = iri(pos)
        if term is None:
            raise fail("a predicate <iri>", pos)
        predicate, pos = term
        pos = _WS.match(text, pos).end()

        lang = datatype = None
        is_literal = False
        term = iri(pos)
        if term is None:
            m = _BNODE.match(text, pos)
            if m is not None:
                term = ("_:" + m.group(1), m.end())
        if term is None:
            m = _LITERAL.match(text, pos)
            if m is None:
                raise fail('an object (<iri>, _:blank or "literal")', pos)
            is_literal = True
            term = (unescape(m.group(1), True, pos), m.end())
            after = m.end()
            if text.startswith("^^", after):
                dt = iri(after + 2)
                if dt is None:
                    raise fail("a datatype <iri> after ^^", after + 2)
                datatype, after = dt
            elif text.startswith("@", after):
                m = _LANG.match(text, after)
                if m is None:
                    raise fail("a language tag after @", after)
                lang, after = m.group(1), m.end()
            term = (term[0], after)
        obj, pos = term
        m = _END.match(text, pos)
        if m is None:
            raise fail("' .' ending the statement", pos)
        pos = m.end()
        yield Triple(subject, predicate, obj, is_literal, lang, datatype)


def read_ntriples(path: Path) -> list[Triple]:
    """Parse an N-Triples file (``.nt``, ``.nt.bz2`` or ``.nt.gz``).

    Raises:
        DatasetNotFoundError: the file does not exist.
        SchemaError: the file is not valid UTF-8 or not N-Triples (file, line and column named);
            :class:`TruncatedFileError` for a compressed stream that stops early or a last line without
            its line ending, :class:`EmptyFileError` for a file without any statement.
    """
    path = rawfile.require_file(Path(path), "the NeMig knowledge-graph file")
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except EOFError as e:
        raise TruncatedFileError(
            f"{path}: compressed stream ends early ({e}); the file is truncated. Expected the complete "
            "official file: copy or download it again"
        ) from e
    except (OSError, ValueError) as e:  # bz2/gzip: "Invalid data stream", "Not a gzipped file"
        raise SchemaError(
            f"{path}: corrupt compressed file ({e}); expected a valid {path.suffix} stream"
        ) from e
    text = rawfile.decode(path, data, "utf-8")
    rawfile.check_not_empty(path, text, "N-Triples statements")
    rawfile.check_final_newline(path, text)
    triples = list(parse_ntriples(text, str(path)))
    if not triples:
        raise EmptyFileError(
            f"{path}: no N-Triples statement in the file (comments only); expected statements"
        )
    return triples


# ---------------------------------------------------------------------------------------------------------


def _local_name(iri: str) -> str:
    return iri.rsplit("/", 1)[-1]


def read_news_text(
    content_mapping: Path,
    content_literals: Path,
    subtopic_mapping: Path,
    subtopic_labels: Path,
    report: DropReport,
) -> pd.DataFrame:
    """Headline, abstract and subtopic label of every NeMig article in the KG.

    Returns:
        Columns ``item`` (``news_N``), ``title``, ``abstract``, ``topic``, ``topic_label`` (str, "" when
        absent), one row per article with a headline or abstract.

    Raises:
        SchemaError: malformed N-Triples or CSV, or a topic with two labels.
    """
    part_of: dict[str, str] = {}
    for t in read_ntriples(content_mapping):
        if t.predicate == HAS_PART and not t.is_literal:
            part_of[t.object] = _local_name(t.subject)

    fields: dict[str, dict[str, str]] = {HEADLINE: {}, ABSTRACT: {}}
    n_unmapped = n_conflict = n_multiline = 0
    for t in read_ntriples(content_literals):
        if t.predicate not in fields or not t.is_literal:
            continue
        news = part_of.get(t.subject)
        if news is None:
            n_unmapped += 1
            continue
        n_multiline += "\n" in t.object or "\r" in t.object
        value = clean_text(t.object)
        prev = fields[t.predicate].setdefault(news, value)
        n_conflict += prev != value
    report.add(
        "headline/abstract literal of a part no news hasPart, ignored", n_unmapped, str(content_literals)
    )
    report.add("second, different headline/abstract of a news, ignored", n_conflict, str(content_literals))
    log.info("%s: %d literals span several lines", content_literals, n_multiline)

    topic_of: dict[str, str] = {}
    for t in read_ntriples(subtopic_mapping):
        if t.predicate == ABOUT and not t.is_literal:
            topic_of[_local_name(t.subject)] = _local_name(t.object).removeprefix("news_topic_")
    labels = _read_topic_labels(subtopic_labels)

    items = sorted(set(fields[HEADLINE]) | set(fields[ABSTRACT]), key=_news_sort_key)
    topics = [topic_of.get(i, "") for i in items]
    return pd.DataFrame(
        {
            "item": items,
            "title": [fields[HEADLINE].get(i, "") for i in items],
            "abstract": [fields[ABSTRACT].get(i, "") for i in items],
            "topic": topics,
            "topic_label": [labels.get(t, "") if t != OUTLIER_TOPIC else "" for t in topics],
        }
    )


def _news_sort_key(news_id: str) -> tuple[int, str]:
    num = news_id.rsplit("_", 1)[-1]
    return (int(num), news_id) if num.isdigit() else (-1, news_id)


def _read_topic_labels(path: Path) -> dict[str, str]:
    """``topic id -> label`` from ``subtopic_annotations.csv`` (``id,topic,topic_label``; topic an integer >= -1)."""
    columns = ("id", "topic", "topic_label")
    text = rawfile.read_text(path, "utf-8", f"a CSV header {list(columns)} and rows", "the NeMig cache file")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, csv.Error) as e:
        raise SchemaError(f"{path}: malformed CSV ({e})") from None
    require_columns(df, columns, str(path))
    if df.empty:
        raise rawfile.no_data_rows(path, f"rows of {list(columns)}")
    topic = pd.to_numeric(df["topic"].str.strip(), errors="coerce")
    bad = (topic.isna() | (topic != topic.round()) | (topic < -1)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise SchemaError(
            f"{path}: line {i + 2}: topic {df['topic'].iloc[i]!r} is not a topic id; expected an integer >= -1 "
            f"({int(bad.sum())} such rows)"
        )
    pairs = df[["topic", "topic_label"]].drop_duplicates()
    dup = pairs["topic"].duplicated(keep=False)
    if dup.any():
        t = pairs.loc[dup, "topic"].iloc[0]
        found = sorted(pairs.loc[pairs["topic"] == t, "topic_label"])
        raise SchemaError(f"{path}: topic {t!r} has labels {found}; expected one label per topic")
    return dict(zip(pairs["topic"], pairs["topic_label"], strict=True))


def nemig_items(news: pd.DataFrame) -> pd.DataFrame:
    """Canonical items (``item``, ``title``, ``text``): headline, abstract and ``Subtopic: <label words>``
    joined with :func:`~recsys_gnn.data.readers.text.join_fields`."""
    texts = []
    for title, abstract, label in zip(news["title"], news["abstract"], news["topic_label"], strict=True):
        sub = f"Subtopic: {label.replace('_', ' ')}" if label else None
        texts.append(join_fields(title, abstract, sub))
    titles = [clean_text(t) for t in news["title"]]
    return pd.DataFrame({"item": news["item"].to_numpy(), "title": titles, "text": texts})


def holdout_last_impressions(
    impressions: pd.DataFrame, history: pd.DataFrame, order: str, source: str = "behaviors.tsv"
) -> None:
    """Set ``impressions["split"]`` in place: per user the last impression "test", the one before "val"
    (users with >= 3 impressions), the others "train".

    Args:
        impressions: :func:`read_behaviors` impressions.
        history: the row-aligned history table (``impression_id``, ``line``).
        order: "impression_id" (numeric id, then line) or "file" (line).
        source: file name used in error messages.

    Raises:
        ConfigError: unknown ``order``.
        SchemaError: ``order="impression_id"`` but an id is not an integer.
    """
    if order not in HOLDOUT_ORDERS:
        raise ConfigError(f"NeMig holdout_order {order!r} is not one of {list(HOLDOUT_ORDERS)}")
    keys = pd.DataFrame({"user": history["user"], "line": history["line"]})
    if order == "impression_id":
        ids = pd.to_numeric(history["impression_id"], errors="coerce")
        if ids.isna().any():
            i = int(np.flatnonzero(ids.isna().to_numpy())[0])
            raise SchemaError(
                f"{source}:{history['line'].iloc[i]}: impression id {history['impression_id'].iloc[i]!r} is not an "
                "integer; use holdout_order='file'"
            )
        keys["key"] = ids
    else:
        keys["key"] = keys["line"]
    keys = keys.sort_values(["user", "key", "line"], kind="stable")
    grouped = keys.groupby("user", sort=False)
    from_end = grouped.cumcount(ascending=False).to_numpy()
    size = grouped["line"].transform("size").to_numpy()
    split = np.where(from_end == 0, "test", np.where((from_end == 1) & (size >= 3), "val", "train"))
    impressions.loc[keys.index, "split"] = split


def read_nemig(
    root: Path, language: str = "en", holdout_order: str = "impression_id", name: str | None = None
) -> RawDataset:
    """Read NeMig for one language (see the module docstring's protocol).

    Args:
        root: dataset folder holding ``en/`` and/or ``de/`` as in the repository's ``data/`` folder.
        language: "en" or "de".
        holdout_order: how a user's impressions are ordered for the holdout: "impression_id" or "file".
        name: dataset name; default "nemig" for English, "nemig-de" for German.

    Raises:
        ConfigError: unknown language or holdout order.
        DatasetNotFoundError: a needed file is missing (named in the message).
        SchemaError: a file is malformed.
    """
    files = nemig_files(language)
    if holdout_order not in HOLDOUT_ORDERS:
        raise ConfigError(f"NeMig holdout_order {holdout_order!r} is not one of {list(HOLDOUT_ORDERS)}")
    name = name or ("nemig" if language == "en" else f"nemig-{language}")
    root = Path(root)
    paths = {k: root / v for k, v in files.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: missing {', '.join(missing)}; expected NeMig's data/ layout "
            "(<lang>/user_data, <lang>/kg, <lang>/cache) under " + str(root)
        )
    report = DropReport()
    impressions, history = read_behaviors(paths["behaviors"], "train", report, with_time=False)
    holdout_last_impressions(impressions, history, holdout_order, str(paths["behaviors"]))

    news = read_news_text(
        paths["content_mapping"],
        paths["content_literals"],
        paths["subtopic_mapping"],
        paths["subtopic_labels"],
        report,
    )
    referenced = set(history["history"].explode().dropna()) | set(impressions["candidates"].explode())
    news = news[news["item"].isin(referenced)].reset_index(drop=True)
    n_missing = len(referenced - set(news["item"]))
    report.add("news referenced in behaviors.tsv without headline or abstract in the KG", n_missing, name)
    log.info(
        "%s: %d news referenced, %d without abstract, %d without subtopic label",
        name,
        len(referenced),
        int((news["abstract"] == "").sum()),
        int((news["topic_label"] == "").sum()),
    )
    return build_news_dataset(name, impressions, history, nemig_items(news), report)
