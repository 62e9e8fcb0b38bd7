"""Request limits and strict types of the HTTP app (FastAPI's TestClient), and the app factory for workers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_export import FAST, N_ITEMS, make_run

from recsys_gnn.export import export_run
from recsys_gnn.serve.__main__ import build_parser
from recsys_gnn.serve.app import ARTIFACT_ENV, ServeLimits, app_from_env, create_app
from recsys_gnn.serve.artifact import Artifact, short_repr

with warnings.catch_warnings():  # starlette's TestClient warns that it would rather have httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ECHO_LIMIT = 400  # no error message may be longer than this (they quote at most a short prefix of the input)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits")
    return export_run(make_run(root / "run"), out=root / "art", latency_args=FAST)


@pytest.fixture(scope="module")
def artifact(artifact_dir: Path) -> Artifact:
    return Artifact.load(artifact_dir)


@pytest.fixture(scope="module")
def client(artifact: Artifact) -> Iterator[TestClient]:
    with TestClient(create_app(artifact)) as c:
        yield c


def error_of(r, status: int) -> str:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == {"error"}
    assert len(body["error"]) <= ECHO_LIMIT, body["error"]
    return body["error"]


# -- body size ---------------------------------------------------------------------------------------------------
def test_large_body_is_refused_before_parsing_and_not_echoed(client: TestClient) -> None:
    big = b'{"items": ["' + b"x" * (20 * 1024 * 1024) + b'"]}'
    r = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert "request body larger than 65536 bytes" in error_of(r, 413)
    assert len(r.content) < 100


def test_chunked_body_is_counted_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"items": ['
        for _ in range(200):
            yield b'"i500", ' * 128  # 1 KiB each, no Content-Length: sent chunked

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert "request body larger than" in error_of(r, 413)


def test_body_limit_is_configurable(artifact: Artifact) -> None:
    with TestClient(create_app(artifact, ServeLimits(max_body_bytes=64))) as c:
        ok = c.post("/recommend", json={"items": ["i500"], "k": 2})
        assert ok.status_code == 200
        r = c.post("/recommend", json={"items": [f"i{500 + i}" for i in range(10)]})
        assert "larger than 64 bytes" in error_of(r, 413)


def test_bad_content_length_is_400(client: TestClient) -> None:
    r = client.post(
        "/recommend",
        content=b'{"items": ["i500"]}',
        headers={"content-type": "application/json", "content-length": "many"},
    )
    assert "Content-Length" in error_of(r, 400)


# -- items and ids -----------------------------------------------------------------------------------------------
def test_items_list_is_bounded(artifact: Artifact) -> None:
    with TestClient(create_app(artifact, ServeLimits(max_items=3))) as c:
        assert c.post("/recommend", json={"items": ["i500", "i501", "i502"]}).status_code == 200
        r = c.post("/recommend", json={"items": ["i500"] * 4})
        assert error_of(r, 422) == "at most 3 item ids per request; got 4"


def test_default_items_bound_and_no_echo(client: TestClient) -> None:
    r = client.post("/recommend", json={"items": ["i500"] * 5000})  # 40 KB: under the body limit
    assert "at most 1000 item ids" in error_of(r, 422)


@pytest.mark.parametrize(
    ("url", "params", "what"),
    [
        ("/recommend", {"user": "u" * 5000}, "user id longer than 256 characters"),
        ("/similar", {"item": "i" * 300}, "item id longer than 256 characters"),
    ],
)
def test_long_query_ids_are_refused_with_a_prefix(
    client: TestClient, url: str, params: dict, what: str
) -> None:
    message = error_of(client.get(url, params=params), 422)
    assert what in message and "characters)" in message


def test_long_body_ids_are_refused(client: TestClient) -> None:
    message = error_of(client.post("/recommend", json={"items": ["i500", "z" * 1000]}), 422)
    assert message.startswith("item id longer than 256 characters: 'zzz")
    message = error_of(client.post("/recommend", json={"items": [10**400]}), 422)
    assert "item id longer than 256 characters" in message


def test_unknown_long_id_404_quotes_only_a_prefix(artifact: Artifact) -> None:
    with TestClient(create_app(artifact, ServeLimits(max_id_chars=100_000, max_url_bytes=100_000))) as c:
        message = error_of(c.get("/similar", params={"item": "q" * 50_000}), 404)
    assert message.startswith("unknown item id 'qqq") and "(50002 characters)" in message


def test_short_repr() -> None:
    assert short_repr("ghost") == "'ghost'"
    assert short_repr("x" * 1000, limit=10) == "'xxxxxxxxx... (1002 characters)"


# -- strict types ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": [True]}, "ids must be strings or integers, not bool"),
        ({"items": [1.0]}, "ids must be strings or integers, not float"),
        ({"items": ["i500", None]}, "ids must be strings or integers, not NoneType"),
        ({"items": [["i500"]]}, "ids must be strings or integers, not list"),
        ({"items": "i500"}, "body field 'items': Input should be a valid list"),
        ({"items": ["i500"], "k": 2.0}, "body field 'k': Input should be a valid integer"),
        ({"items": ["i500"], "k": True}, "body field 'k': Input should be a valid integer"),
        ({"items": ["i500"], "k": "3"}, "body field 'k': Input should be a valid integer"),
        (
            {"items": ["i500"], "exclude_given": 1},
            "body field 'exclude_given': Input should be a valid boolean",
        ),
        ({"items": ["i500"], "k": 10**30}, "k must be between 1 and the number of items"),
        ({"items": ["i500"], "k": 0}, "k must be between 1 and the number of items"),
    ],
)
def test_body_types_are_strict(client: TestClient, body: dict, message: str) -> None:
    assert message in error_of(client.post("/recommend", json=body), 422)


def test_integer_ids_are_read_as_their_digits(client: TestClient, artifact: Artifact) -> None:
    r = client.post("/recommend", json={"items": [12345]})
    assert "unknown item id '12345'" in error_of(r, 404)


def test_many_type_errors_make_one_short_message(client: TestClient) -> None:
    message = error_of(client.post("/recommend", json={"items": [True] * 900}), 422)
    assert message.count("not bool") == 3 and message.endswith("and 897 more problems")


def test_unknown_field_name_is_cut(client: TestClient) -> None:
    message = error_of(client.post("/recommend", json={"items": ["i500"], "y" * 10_000: 1}), 422)
    assert "Extra inputs are not permitted" in message


@pytest.mark.parametrize("k", ["1.0", "2.5", "true", "1_000", " 3", "1e3", "9" * 40, "ten"])
def test_query_k_is_plain_digits(client: TestClient, k: str) -> None:
    message = error_of(client.get("/recommend", params={"user": "u100", "k": k}), 422)
    assert "query field 'k'" in message


def test_query_k_bounds(client: TestClient, artifact: Artifact) -> None:
    assert client.get("/similar", params={"item": "i500", "k": N_ITEMS - 1}).status_code == 200
    message = error_of(client.get("/similar", params={"item": "i500", "k": "-5"}), 422)
    assert message == f"k must be between 1 and the number of items ({N_ITEMS}); got -5"
    with TestClient(create_app(artifact, ServeLimits(max_k=4))) as c:
        assert c.get("/recommend", params={"user": "u100", "k": 4}).status_code == 200
        message = error_of(c.get("/recommend", params={"user": "u100", "k": 5}), 422)
        assert message == "k must be between 1 and the server's max_k (4); got 5"


# -- URL length and other errors ---------------------------------------------------------------------------------
def test_long_url_is_414(client: TestClient, artifact: Artifact) -> None:
    message = error_of(client.get("/recommend", params={"user": "u100", "pad": "p" * 20_000}), 414)
    assert message == "request URL longer than 8192 bytes"
    with TestClient(create_app(artifact, ServeLimits(max_url_bytes=40))) as c:
        assert c.get("/recommend", params={"user": "u100"}).status_code == 200
        assert error_of(c.get("/recommend", params={"user": "u100", "k": "10", "x": "y" * 20}), 414)


def test_unknown_route_and_method_answer_json(client: TestClient) -> None:
    assert error_of(client.get("/nothing"), 404) == "Not Found"
    assert error_of(client.put("/recommend"), 405) == "Method Not Allowed"


def test_openapi_schema_still_builds(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/health", "/recommend", "/similar"} <= set(schema["paths"])


# -- configuration -----------------------------------------------------------------------------------------------
def test_limits_from_env_and_back() -> None:
    limits = ServeLimits(max_body_bytes=1000, max_items=7)
    assert ServeLimits.from_env(limits.to_env()) == limits
    assert ServeLimits.from_env({"RECSYS_GNN_SERVE_MAX_K": "50"}) == ServeLimits(max_k=50)
    assert ServeLimits.from_env({}) == ServeLimits()
    with pytest.raises(ValueError, match="RECSYS_GNN_SERVE_MAX_ITEMS must be an integer"):
        ServeLimits.from_env({"RECSYS_GNN_SERVE_MAX_ITEMS": "lots"})
    with pytest.raises(ValueError, match="max_k must be a positive integer"):
        ServeLimits(max_k=0)


def test_serve_flags_default_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GNN_SERVE_MAX_ITEMS", "12")
    args = build_parser().parse_args(["art", "--max-body-bytes", "2048", "--workers", "3"])
    assert (args.max_items, args.max_body_bytes, args.max_k, args.workers) == (12, 2048, 1000, 3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["art", "--max-k", "0"])


def test_factory_from_argument(artifact_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARTIFACT_ENV, raising=False)
    app = app_from_env(artifact_dir, limits=ServeLimits(max_items=2))
    assert app.state.limits.max_items == 2
    with TestClient(app) as c:
        assert c.get("/health").json()["n_items"] == N_ITEMS


def test_factory_from_env(artifact_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ARTIFACT_ENV, str(artifact_dir))
    monkeypatch.setenv("RECSYS_GNN_SERVE_MAX_K", "3")
    monkeypatch.setenv("RECSYS_GNN_SERVE_VERIFY", "0")
    app = app_from_env()
    assert app.state.limits == ServeLimits(max_k=3)
    assert app.state.artifact.path == artifact_dir
    with TestClient(app) as c:
        assert c.get("/recommend", params={"user": "u100", "k": 3}).status_code == 200
        assert c.get("/recommend", params={"user": "u100", "k": 4}).status_code == 422


def test_factory_without_artifact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARTIFACT_ENV, raising=False)
    with pytest.raises(ValueError, match="RECSYS_GNN_ARTIFACT"):
        app_from_env()
