"""Errors raised by the data layer. Each names the file, row or value at fault and what was expected."""


class DataError(ValueError):
    """Base class for bad or missing input data."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """No raw files for a dataset in any searched location, and no way to download them."""


class ChecksumError(DataError):
    """A downloaded or cached archive does not match its published checksum."""


class RawFileMismatchError(ChecksumError):
    """A local raw file (``RECSYS_GNN_RAW`` or the cache) differs in size or digest from the official release,
    or has no recorded digest to be checked against."""


class SchemaError(DataError):
    """A file lacks a required column/field, or a value cannot be parsed as the expected type."""


class TruncatedFileError(SchemaError):
    """A file ends mid-record: no line ending after the last line, a last line with too few fields, or a
    compressed stream that stops before its end marker."""


class EmptyFileError(SchemaError):
    """A file holds no data rows (zero bytes, blank, or a header only)."""


class FileEncodingError(SchemaError):
    """A file is not in its expected text encoding (e.g. UTF-16 where UTF-8 or Latin-1 is expected)."""


class EmptySplitError(DataError):
    """A split (train/val/test) came out empty after filtering."""


class ConfigError(ValueError):
    """A configuration value is invalid (unknown domain, task not supported by a dataset, ...)."""


class UnknownIdError(KeyError):
    """A user or item id that the model/artifact has never seen."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
