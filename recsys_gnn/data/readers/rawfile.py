"""Checks every reader applies to a raw file before parsing it: present, in its encoding, non-empty, complete.

A copy that was cut short (an interrupted download or ``cp``, a full disk) usually ends mid-line. Every
official file the readers know ends with a line ending (checked on the staged copies), so a file whose last
line has no line ending, or whose last line has fewer fields than the others, is refused as truncated
(:class:`TruncatedFileError`) instead of being read without its tail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from recsys_gnn.data.errors import (
    DatasetNotFoundError,
    EmptyFileError,
    FileEncodingError,
    SchemaError,
    TruncatedFileError,
)

log = logging.getLogger(__name__)

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; otherwise :class:`DatasetNotFoundError` naming it and what the folder holds.

    Args:
        path: the file.
        what: description used in the message, e.g. "the official MovieLens ratings file".
    """
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        where = f"in {path.parent} (found: {found[:12]}{' ...' if len(found) > 12 else ''})"
        if not path.parent.is_dir():
            where = f"but the folder {path.parent} does not exist"
        raise DatasetNotFoundError(f"{path}: file not found; expected {what} {path.name} {where}")
    return path


def check_encoding(path: Path, data: bytes, expected: str) -> None:
    """Raise :class:`FileEncodingError` when ``data`` is UTF-16/32 text (a byte-order mark or NUL bytes).

    Latin-1 decodes any byte, so without this check a UTF-16 copy of a Latin-1 file would be read as text
    full of NUL characters.
    """
    if data.startswith(_UTF16_BOMS) or b"\x00" in data:
        bom = "a UTF-16 byte-order mark" if data.startswith(_UTF16_BOMS) else "NUL bytes"
        at = data.find(b"\x00")
        line = data.count(b"\n", 0, max(at, 0)) + 1
        raise FileEncodingError(
            f"{path}: line {line}: the file holds {bom} (UTF-16 or UTF-32 text?); expected {expected} text "
            "as in the official release (re-save it as " + expected + ")"
        )


def decode(path: Path, data: bytes, encodings: str | Sequence[str]) -> str:
    """Decode ``data`` with the first of ``encodings`` that fits (the last is the official one).

    A UTF-8 byte-order mark is removed.

    Raises:
        FileEncodingError: UTF-16 text, or no encoding fits (names the line and byte).
    """
    encs = [encodings] if isinstance(encodings, str) else list(encodings)
    check_encoding(path, data, encs[-1].upper())
    for i, enc in enumerate(encs):
        try:
            text = data.decode("utf-8-sig" if enc.replace("_", "-").lower() == "utf-8" else enc)
        except UnicodeDecodeError as e:
            if i + 1 < len(encs):
                continue
            line = data[: e.start].count(b"\n") + 1
            raise FileEncodingError(
                f"{path}: line {line}: byte {data[e.start : e.start + 1]!r} at offset {e.start} is not valid "
                f"{enc}; expected {enc} text (the official encoding)"
            ) from None
        if i + 1 < len(encs):
            log.warning("%s: decoded as %s, not the official %s", path, enc, encs[-1])
        return text
    raise AssertionError("unreachable")


def check_not_empty(path: Path, text: str, expected: str) -> None:
    """Raise :class:`EmptyFileError` when ``text`` holds nothing but whitespace."""
    if not text.strip():
        raise EmptyFileError(f"{path}: file is empty ({len(text)} characters); expected {expected}")


def check_final_newline(path: Path, text: str | bytes) -> None:
    """Raise :class:`TruncatedFileError` when non-empty ``text`` does not end with a line ending."""
    nl = b"\n" if isinstance(text, bytes) else "\n"
    if text and not text.endswith(nl):  # type: ignore[arg-type]
        start = text.rfind(nl) + 1  # type: ignore[arg-type]
        raise no_line_ending(path, text.count(nl) + 1, text[start:])  # type: ignore[arg-type]


def no_line_ending(path: Path, line: int, tail: str | bytes) -> TruncatedFileError:
    """The error for a last line (number ``line``, text ``tail``) that has no line ending."""
    if isinstance(tail, bytes):
        tail = tail.decode("utf-8", errors="replace")
    return TruncatedFileError(
        f"{path}: line {line}: the file ends without a line ending after {tail[-60:]!r}; it looks truncated "
        "(cut mid-line). Expected the complete official file: copy or download it again"
    )


def read_text(path: Path, encodings: str | Sequence[str], expected: str, what: str) -> str:
    """Read a whole raw text file after :func:`require_file`, :func:`decode`, :func:`check_not_empty` and
    :func:`check_final_newline`.

    Args:
        path: the file.
        encodings: accepted encodings, the official one last.
        expected: what the content should be, for the empty-file message.
        what: what the file is, for the missing-file message.
    """
    data = require_file(path, what).read_bytes()
    text = decode(path, data, encodings)
    check_not_empty(path, text, expected)
    check_final_newline(path, text)
    return text


def truncated_last_line(
    path: Path, line: int, found: int, expected: int, names: Sequence[str] = ()
) -> SchemaError:
    """The error for a last line with fewer fields than the format has (a file cut mid-line)."""
    cols = f" ({', '.join(names)})" if names else ""
    return TruncatedFileError(
        f"{path}: line {line} (the last): {found} of {expected} fields{cols}; the file looks truncated. "
        "Expected the complete official file: copy or download it again"
    )


def no_data_rows(path: Path, expected: str) -> EmptyFileError:
    """The error for a file with a header but no data rows."""
    return EmptyFileError(f"{path}: the file has a header but no data rows; expected {expected}")


__all__ = [
    "check_encoding",
    "check_final_newline",
    "check_not_empty",
    "decode",
    "no_data_rows",
    "no_line_ending",
    "read_text",
    "require_file",
    "truncated_last_line",
]
