"""Known errors as one line on the command line: ``error: <message>`` on stderr and exit status 1.

Hydra catches every exception of the task function and prints its traceback (``run_and_report`` in
``hydra/_internal/utils.py``), but it lets ``SystemExit`` through. :func:`one_line_errors` therefore turns the
errors a user can fix (bad configuration, bad or missing data, unknown ids) into a one-line message and
``SystemExit(1)`` inside the task function; the full traceback still goes to the run's log file. Anything else
is a bug and keeps its traceback. ``RECSYS_GNN_DEBUG=1`` or ``HYDRA_FULL_ERROR=1`` show the traceback of known
errors too. In a multirun :func:`recsys_gnn.pipeline.run_job` handles a failed job (``FAILED`` file, the sweep
goes on) before the error gets here.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import CompactHydraException, InstantiationException
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, ValidationError

from recsys_gnn.data.errors import ConfigError, DataError, UnknownIdError

log = logging.getLogger(__name__)

# Errors whose message tells the user what to change; anything else is a bug.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    UnknownIdError,
    MissingMandatoryValue,  # a `???` value left unset
    InterpolationResolutionError,  # ${...} that does not resolve
    ValidationError,  # a value of the wrong type for a typed node
)
# Causes for which hydra.utils.instantiate's error is a configuration problem: a _target_ that does not import,
# a wrong or missing argument, a value the constructor rejects.
INSTANTIATION_CAUSES: tuple[type[BaseException], ...] = (ImportError, TypeError, ValueError)
DEBUG_ENV = ("RECSYS_GNN_DEBUG", "HYDRA_FULL_ERROR")


def debug_requested() -> bool:
    """True when ``RECSYS_GNN_DEBUG`` or ``HYDRA_FULL_ERROR`` is set to a non-empty value other than 0/false."""
    return any(os.environ.get(k, "").strip().lower() not in ("", "0", "false", "no") for k in DEBUG_ENV)


def known_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err`` (itself, or the known cause of an instantiation error), else None."""
    if isinstance(err, KNOWN_ERRORS):
        return err
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        if cause is None:
            return err
        if isinstance(cause, KNOWN_ERRORS):
            return cause
        if isinstance(cause, INSTANTIATION_CAUSES):
            return err
    if isinstance(err, CompactHydraException) and not isinstance(err, InstantiationException):
        return err  # Hydra's own compact errors (config composition, override parsing)
    return None


def one_line(err: BaseException) -> str:
    """``err``'s message on one line: its lines joined by ``"; "`` (by a space after ``:``, ``.``, ``;``, ``,``)."""
    text = ""
    for line in (line.strip() for line in str(err).splitlines()):
        if line:
            text += ("" if not text else " " if text[-1] in ":.;," else "; ") + line
    return text or type(err).__name__


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a known error raised inside the block into ``error: <message>`` on stderr and ``SystemExit(1)``.

    The traceback is written to the log files of the root logger (the run's ``<task_name>.log``), not to the
    terminal. Unknown errors, and every error when :func:`debug_requested`, propagate unchanged.
    """
    try:
        yield
    except Exception as err:
        known = known_error(err)
        if known is None or debug_requested():
            raise
        message = one_line(known)
        _log_to_files(f"error: {message}", err)
        sys.stdout.flush()
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


def _log_to_files(message: str, err: BaseException) -> None:
    """Write ``message`` with ``err``'s traceback to the root logger's file handlers only."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, message, (), (type(err), err, err.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
