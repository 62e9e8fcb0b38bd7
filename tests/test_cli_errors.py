"""What ``python run.py`` shows: known errors as one line (``error: ...``, exit status 1; the traceback in the log
file, or on the terminal with RECSYS_GNN_DEBUG=1), bugs with their traceback, and a run's results last."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from recsys_gnn.cli_errors import one_line, one_line_errors
from recsys_gnn.data.errors import ConfigError, TruncatedFileError, UnknownIdError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_GNN_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def _exit_line(err: BaseException, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        raise err
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    return captured.err.rstrip("\n")


def _instantiation_error(cause: BaseException) -> InstantiationException:
    try:
        raise InstantiationException(f"Error in call to target 'x.Y':\n{cause!r}\nfull_key: gnn") from cause
    except InstantiationException as err:
        return err


@pytest.mark.usefixtures("no_debug")
def test_known_errors_become_one_line_and_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_line(ConfigError("compress.dim=0: bad"), capsys) == "error: compress.dim=0: bad"
    truncated = TruncatedFileError("ratings.csv ends mid-record:\n  last line: '1,2'\nre-download it")
    assert _exit_line(truncated, capsys) == (
        "error: ratings.csv ends mid-record: last line: '1,2'; re-download it"
    )
    assert _exit_line(UnknownIdError("unknown user 'u9'"), capsys) == "error: unknown user 'u9'"
    missing = None
    try:
        OmegaConf.create({"a": "???"}).a  # noqa: B018
    except MissingMandatoryValue as err:
        missing = err
    assert _exit_line(missing, capsys).startswith("error: Missing mandatory value: a")
    # instantiate wraps constructor errors: a known cause is reported as itself, a bad argument as Hydra words it
    assert _exit_line(_instantiation_error(ConfigError("split: frac")), capsys) == "error: split: frac"
    line = _exit_line(_instantiation_error(ValueError("num_layers must be >= 1")), capsys)
    assert (
        line == "error: Error in call to target 'x.Y': ValueError('num_layers must be >= 1'); full_key: gnn"
    )


@pytest.mark.usefixtures("no_debug")
def test_bugs_keep_their_traceback() -> None:
    with pytest.raises(RuntimeError), one_line_errors():
        raise RuntimeError("a bug")
    with pytest.raises(KeyError), one_line_errors():
        raise KeyError("not an UnknownIdError")
    with pytest.raises(InstantiationException), one_line_errors():
        raise _instantiation_error(AttributeError("a bug in a constructor"))


@pytest.mark.parametrize("env", ["RECSYS_GNN_DEBUG", "HYDRA_FULL_ERROR"])
def test_debug_env_shows_the_traceback_of_known_errors(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.delenv("RECSYS_GNN_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv(env, "1")
    with pytest.raises(ConfigError), one_line_errors():
        raise ConfigError("shown with a traceback")
    monkeypatch.setenv(env, "0")
    with pytest.raises(SystemExit), one_line_errors():
        raise ConfigError("one line again")


@pytest.mark.usefixtures("no_debug")
def test_the_traceback_goes_to_the_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        _exit_line(ConfigError("optimizer.lr=-1: must be > 0"), capsys)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = (tmp_path / "train.log").read_text()
    assert "error: optimizer.lr=-1: must be > 0" in text and "Traceback" in text and "ConfigError" in text


def test_one_line_joins_lines() -> None:
    assert one_line(ValueError("a\n\n  b:\n c")) == "a; b: c"
    assert one_line(ValueError("")) == "ValueError"


# -- python run.py ------------------------------------------------------------------------------------------------
def _run_py(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    for key in ("RECSYS_GNN_DEBUG", "HYDRA_FULL_ERROR"):
        if key not in env:
            environ.pop(key, None)
    return subprocess.run(
        [sys.executable, "run.py", f"hydra.run.dir={tmp_path / 'run'}", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_py_config_error_is_one_line(tiny_env: Path, tmp_path: Path) -> None:
    proc = _run_py(["optimizer.lr=-0.01", "compress.dim=0"], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "error: invalid config: compress.dim=0: must be an integer >= 1; optimizer.lr=-0.01: must be a number > 0"
    ]
    assert "Traceback" in (tmp_path / "run" / "train.log").read_text()

    debug = _run_py(["optimizer.lr=-0.01"], tmp_path, RECSYS_GNN_DEBUG="1")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "ConfigError: invalid config: optimizer.lr=-0.01" in debug.stderr


def test_run_py_data_error_is_one_line(tiny_env: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_env, raw)
    ratings = raw / "ml-latest-small" / "ratings.csv"
    ratings.write_bytes(ratings.read_bytes()[:-7])  # cut mid-record
    proc = _run_py([], tmp_path, RECSYS_GNN_RAW=str(raw))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "ratings.csv" in last


def test_a_run_ends_with_its_results_table(tiny_env: Path, tmp_path: Path) -> None:
    """W&B (offline) and Lightning print nothing after the results: the table is the last thing shown."""
    args = ["logger=default", "trainer.max_epochs=1", "model=mf", "~gnn", "~graph", "compress.dim=8"]
    environ = {k: v for k, v in os.environ.items() if k != "WANDB_QUIET"}
    proc = subprocess.run(
        [sys.executable, "run.py", f"hydra.run.dir={tmp_path / 'run'}", *args],
        cwd=ROOT,
        env={**environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order things were printed
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "the W&B run was not created"
    output = proc.stdout.rstrip()
    table = (tmp_path / "run" / "metrics.md").read_text().rstrip()
    assert output.endswith(table)
    header = output[: -len(table)].rstrip().splitlines()[-1]
    assert header.endswith(f"results ({tmp_path / 'run'}):")
