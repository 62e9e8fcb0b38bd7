"""Cleaning of scraped item text: HTML stripping, whitespace, junk-title detection, field joining.

Catalogue text (Amazon metadata, Last.fm tags, benchmark text files) is what the language-model encoder sees,
so it must be plain prose: no markup, no entities, no control characters, single spaces.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable

# Script/style bodies are code, not text: drop them with their content before removing tags.
_SCRIPT_RE = re.compile(r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
# Only complete tags, '<' directly followed by a letter (or / or !): "a < b" and "<3" are text, not markup.
_TAG_RE = re.compile(r"<[/!]?[a-zA-Z][^<>]*>")
# Zero-width and bidi-control characters survive whitespace collapsing but carry no text.
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE_RE = re.compile(r"\s+")
_ALNUM_RE = re.compile(r"\w", re.UNICODE)

# What markup/code leaves behind when a scraper cut a page in the wrong place, e.g. the 2018 Amazon
# Magazine_Subscriptions titles '<span class="a-size-medium a-color-secondary"' and ' Magazines" />'.
_JUNK_RE = re.compile(
    r"""
    <[/!]?[a-zA-Z]                  # an opening of a tag that was never closed
    | /\s*>                         # the end of a self-closing tag
    | \b[a-zA-Z-]+\s*=\s*["']       # an attribute: class="...
    | \{\s*["']\w                   # a JSON object; plain braces occur in real titles ("{The Issue}")
    | ;\s*\}                         # the end of a code block
    | \bfunction\s*\(               # JavaScript
    | \bvar\s+\w+\s*=
    | \b(?:window|document)\.\w
    | https?://                     # a bare URL is not a title
    """,
    re.VERBOSE,
)

_SENTENCE_END = (".", "!", "?", ":", ";")


def strip_html(s: str) -> str:
    """Remove HTML markup from ``s`` and decode its entities.

    Script/style blocks and comments are removed with their content; other tags are replaced by a space
    (``"a<br>b"`` must not become ``"ab"``). Entities are decoded until stable, because scraped text is
    sometimes double-escaped (``&amp;amp;``). Whitespace is not collapsed here; see :func:`clean_text`.

    Args:
        s: raw text.

    Returns:
        The text without markup.
    """
    prev = None
    out = s
    # Decode first so that escaped markup ("&lt;b&gt;") is removed as markup; loop for double escaping.
    for _ in range(3):
        if out == prev:
            break
        prev = out
        out = html.unescape(out)
    out = _SCRIPT_RE.sub(" ", out)
    out = _COMMENT_RE.sub(" ", out)
    return _TAG_RE.sub(" ", out)


def clean_text(s: object) -> str:
    """Turn a raw metadata value into one line of plain text.

    Strips HTML (:func:`strip_html`), normalizes Unicode to NFC, removes control and zero-width characters
    and collapses all whitespace to single spaces.

    Args:
        s: a string, a list/tuple of strings (joined with spaces, as Amazon ``description`` lists), or a
            missing value (None / float NaN), which gives ``""``.

    Returns:
        The cleaned text, ``""`` when nothing is left.

    Raises:
        TypeError: ``s`` is of another type (a dict, a number), which is not text.
    """
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    if isinstance(s, list | tuple):
        return _collapse(" ".join(clean_text(x) for x in s))
    if not isinstance(s, str):
        raise TypeError(f"expected text (str, list of str or None), got {type(s).__name__}: {s!r:.80}")
    out = unicodedata.normalize("NFC", strip_html(s))
    out = _INVISIBLE_RE.sub("", out)
    out = _CONTROL_RE.sub(" ", out)
    return _collapse(out)


def _collapse(s: str) -> str:
    return _SPACE_RE.sub(" ", s).strip()


def is_junk_title(s: str) -> bool:
    """Whether a title is scraped markup/code rather than a name.

    A title is junk when, after :func:`strip_html`, no letter or digit is left or markup/code residue
    remains (an unclosed tag, an attribute, ``/>``, JSON, JavaScript, a URL). Ordinary titles with
    entities or inline tags (``"Tom &amp; Jerry"``, ``"<i>Time</i>"``) are not junk. An empty title is
    missing, not junk.

    Args:
        s: the raw title.

    Returns:
        True when the title should not be shown or encoded.
    """
    if not s or not s.strip():
        return False
    text = strip_html(s)
    return not _ALNUM_RE.search(text) or _JUNK_RE.search(text) is not None


def join_fields(*fields: str | None, sep: str = ". ") -> str:
    """Join text fields into one text, skipping empty ones and avoiding doubled punctuation.

    Each field is cleaned with :func:`clean_text`. Fields are joined with ``sep`` unless the previous one
    already ends a sentence (``.!?:;``), in which case a single space is used:
    ``join_fields("Duran Duran", None, "Tags: new wave, 80s")`` gives ``"Duran Duran. Tags: new wave, 80s"``.

    Args:
        *fields: text fields in the order they should appear; None and empty strings are skipped.
        sep: separator between fields.

    Returns:
        The joined text, ``""`` if every field is empty.
    """
    parts = [c for c in (clean_text(f) for f in fields) if c]
    if not parts:
        return ""
    out = parts[0]
    for part in parts[1:]:
        out += (" " if out.endswith(_SENTENCE_END) else sep) + part
    return out


def unique_texts(values: Iterable[object]) -> list[str]:
    """Clean ``values`` and keep the non-empty ones, first occurrence only, in order.

    Scraped list fields repeat themselves (Amazon ``category`` ``["Gift Cards", "Gift Cards"]``,
    ``description`` ``["text", "", ""]``).

    Args:
        values: raw values, each accepted by :func:`clean_text`.

    Returns:
        The distinct cleaned non-empty values.
    """
    seen: set[str] = set()
    out: list[str] = []
    for v in values:
        c = clean_text(v)
        if c and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def truncate_words(s: str, max_chars: int) -> str:
    """Shorten ``s`` to at most ``max_chars`` characters at a word boundary, marking the cut with "…".

    Args:
        s: cleaned text.
        max_chars: maximum length of the result, at least 2.

    Returns:
        ``s`` unchanged when short enough, otherwise its longest word prefix that fits, plus "…".
    """
    if max_chars < 2:
        raise ValueError(f"max_chars must be >= 2, got {max_chars}")
    if len(s) <= max_chars:
        return s
    cut = s[: max_chars - 1]
    space = cut.rfind(" ")
    if space > 0:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def first_sentence(s: str, max_chars: int = 80) -> str:
    """The first sentence of cleaned text ``s``, shortened with :func:`truncate_words` to ``max_chars``.

    Used as a display title when an item has no usable title but has a description.
    """
    m = re.search(r"[.!?](\s|$)", s)
    head = s[: m.start() + 1] if m else s
    return truncate_words(head.strip(), max_chars)
