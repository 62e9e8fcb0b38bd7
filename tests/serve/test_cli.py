"""The ``recommend`` CLI: JSON answers identical to the HTTP app's builders, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export import FAST, N_ITEMS, brute_force, make_run

from recsys_gnn.export import export_run
from recsys_gnn.serve.app import cold_start_response, similar_response
from recsys_gnn.serve.artifact import Artifact
from recsys_gnn.serve.cli import main


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    run = make_run(root / "run")
    return run, export_run(run, out=root / "art", quantization="int8", latency_args=FAST)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_user(exported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([str(exported[1]), "--user", "u105", "-k", "3"], capsys)
    assert code == 0
    body = json.loads(out)
    assert body["user"] == "u105" and body["k"] == 3 and len(body["items"]) == 3
    assert body["items"] == Artifact.load(exported[1]).recommend("u105", k=3)
    code, out, _ = run_cli([str(exported[1]), "--user", "u105", "-k", str(N_ITEMS), "--include-seen"], capsys)
    assert len(json.loads(out)["items"]) == N_ITEMS


def test_items_and_similar(exported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    art = Artifact.load(exported[1])
    code, out, _ = run_cli([str(exported[1]), "--items", "i500, i509", "-k", "4"], capsys)
    assert code == 0 and json.loads(out) == cold_start_response(art, ["i500", "i509"], k=4)
    code, out, _ = run_cli([str(exported[1]), "--similar", "i512"], capsys)
    assert code == 0 and json.loads(out) == similar_response(art, "i512", k=10)


def test_fp32_cli_matches_brute_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", seed=3)
    art = export_run(run, out=tmp_path / "art", latency_args=FAST)
    code, out, _ = run_cli([str(art), "--user", "u107", "-k", "6"], capsys)
    assert code == 0 and [x["item"] for x in json.loads(out)["items"]] == brute_force(run, 7, 6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "ghost"], "unknown user id 'ghost'"),
        (["--items", "i500,bad"], "unknown item id 'bad'"),
        (["--similar", "i500", "-k", "0"], "k must be between 1 and"),
        (["--items", ","], "empty history"),
    ],
)
def test_errors(
    exported: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_cli([str(exported[1]), *args], capsys)
    assert code == 1 and out == ""
    assert message in json.loads(err)["error"]


def test_argument_errors(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(exported[1]), "--user", "u100", "--similar", "i500"])  # mutually exclusive
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    code, _, err = run_cli([str(tmp_path / "missing"), "--user", "u100"], capsys)
    assert code == 1 and "does not exist" in json.loads(err)["error"]


def test_faiss_index_needs_faiss(exported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import faiss  # noqa: F401
    except ImportError:
        code, _, err = run_cli([str(exported[1]), "--user", "u100", "--index", "faiss"], capsys)
        assert code == 1 and "pip install faiss-cpu" in json.loads(err)["error"]
        return
    art = Artifact.load(exported[1], index="faiss")
    brute = Artifact.load(exported[1])
    for user in ("u100", "u104"):
        got, ref = art.recommend(user, k=5), brute.recommend(user, k=5)
        assert [x["item"] for x in got] == [x["item"] for x in ref]
        assert [x["score"] for x in got] == pytest.approx([x["score"] for x in ref], rel=1e-4)
    assert [x["item"] for x in art.similar("i503", k=5)] == [x["item"] for x in brute.similar("i503", k=5)]
