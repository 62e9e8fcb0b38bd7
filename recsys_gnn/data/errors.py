"""Errors raised by the data layer. Each names the file, row or value at fault and what was expected."""


class DataError(ValueError):
    """Base class for bad or missing input data."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """No raw files for a dataset in any searched location, and no way to download them."""


class ChecksumError(DataError):
    """A downloaded or cached archive does not match its published checksum."""


class SchemaError(DataError):
    """A file lacks a required column/field, or a value cannot be parsed as the expected type."""


class EmptySplitError(DataError):
    """A split (train/val/test) came out empty after filtering."""


class ConfigError(ValueError):
    """A configuration value is invalid (unknown domain, task not supported by a dataset, ...)."""


class UnknownIdError(KeyError):
    """A user or item id that the model/artifact has never seen."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
