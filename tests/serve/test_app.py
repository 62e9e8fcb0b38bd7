"""The HTTP app over a real loopback socket, and ``python -m recsys_gnn.serve`` as a process."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from test_export import FAST, N_ITEMS, brute_force, make_run

from recsys_gnn.export import export_run
from recsys_gnn.serve.app import create_app
from recsys_gnn.serve.artifact import Artifact

TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("app")
    run = make_run(root / "run")
    return run, export_run(run, out=root / "art", latency_args=FAST)


@pytest.fixture(scope="module")
def client(exported: tuple[Path, Path]) -> Iterator[httpx.Client]:
    """A uvicorn server in a thread on 127.0.0.1 at a free port, and an httpx client for it."""
    app = create_app(Artifact.load(exported[1]))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


def test_health(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "n_users": 12,
        "n_items": N_ITEMS,
        "dim": 8,
        "quantization": "fp32",
        "index": "brute",
    }


def test_recommend_known_user(client: httpx.Client, exported: tuple[Path, Path]) -> None:
    r = client.get("/recommend", params={"user": "u103", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "u103" and body["k"] == 5 and body["exclude_seen"] is True
    assert [x["item"] for x in body["items"]] == brute_force(exported[0], 3, 5)
    assert all(set(x) == {"item", "title", "score"} for x in body["items"])
    r = client.get("/recommend", params={"user": "u103", "k": N_ITEMS, "exclude_seen": "false"})
    assert len(r.json()["items"]) == N_ITEMS


def test_recommend_new_user(client: httpx.Client, exported: tuple[Path, Path]) -> None:
    art = Artifact.load(exported[1])
    r = client.post("/recommend", json={"items": ["i501", "i502"], "k": 4})
    assert r.status_code == 200
    assert r.json()["items"] == art.recommend_for_items(["i501", "i502"], k=4)
    assert {"i501", "i502"}.isdisjoint(x["item"] for x in r.json()["items"])


def test_similar(client: httpx.Client, exported: tuple[Path, Path]) -> None:
    r = client.get("/similar", params={"item": "i510", "k": 3})
    assert r.status_code == 200
    assert r.json() == {"item": "i510", "k": 3, "items": Artifact.load(exported[1]).similar("i510", k=3)}


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "message"),
    [
        ("get", "/recommend", {"params": {"user": "ghost"}}, 404, "unknown user id 'ghost'"),
        ("get", "/similar", {"params": {"item": "i999"}}, 404, "unknown item id 'i999'"),
        ("post", "/recommend", {"json": {"items": ["i500", "nope"]}}, 404, "unknown item id 'nope'"),
        ("get", "/recommend", {"params": {"user": "u100", "k": 0}}, 422, "k must be between 1 and"),
        ("get", "/recommend", {"params": {"user": "u100", "k": N_ITEMS + 1}}, 422, f"got {N_ITEMS + 1}"),
        ("get", "/similar", {"params": {"item": "i500", "k": "ten"}}, 422, "query field 'k'"),
        ("get", "/recommend", {"params": {"k": 3}}, 422, "query field 'user': Field required"),
        ("post", "/recommend", {"json": {"items": []}}, 422, "empty history"),
        ("post", "/recommend", {"json": {"itemz": ["i500"]}}, 422, "body field 'itemz'"),
        (
            "post",
            "/recommend",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "JSON",
        ),
    ],
)
def test_errors_are_json_and_specific(
    client: httpx.Client, method: str, url: str, kwargs: dict, status: int, message: str
) -> None:
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_python_m_serve_runs_uvicorn(exported: tuple[Path, Path]) -> None:
    """``python -m recsys_gnn.serve <artifact> --port 0`` serves on a free loopback port until terminated."""
    cmd = [sys.executable, "-m", "recsys_gnn.serve", str(exported[1]), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    try:
        port, deadline, seen = None, time.monotonic() + 60, []
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, f"server exited early: {''.join(seen)}"
                continue
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, f"no 'Uvicorn running' line within 60 s: {''.join(seen)}"
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["n_items"] == N_ITEMS
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_serve_missing_artifact_exits_1(tmp_path: Path) -> None:
    from recsys_gnn.serve import main

    assert main([str(tmp_path / "nothing")]) == 1


def _raw_exchange(port: int, data: bytes) -> bytes | OSError:
    """Send ``data`` on a fresh loopback connection and read until the server closes it (or the error met)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out
        except OSError as err:
            return err


def test_limits_over_a_real_socket(client: httpx.Client) -> None:
    """Through uvicorn's h11 parser: 414 for a long URL, 413 for a large declared body (answered before it
    arrives); a 1M-character request line is cut off by uvicorn itself (400 or a reset), and the server lives on."""
    port = client.base_url.port
    url = b"/recommend?user=" + b"u" * 12_000
    reply = _raw_exchange(port, b"GET " + url + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert isinstance(reply, bytes) and reply.startswith(b"HTTP/1.1 414")
    assert reply.endswith(b'{"error":"request URL longer than 8192 bytes"}')
    head = b"POST /recommend HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    reply = _raw_exchange(port, head + b"Content-Length: 209715200\r\n\r\n" + b'{"items": ["')
    assert isinstance(reply, bytes) and reply.startswith(b"HTTP/1.1 413") and len(reply) < 400
    reply = _raw_exchange(port, b"GET /recommend?user=" + b"u" * 1_000_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert isinstance(reply, OSError) or reply[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 414"), reply[:100]
    assert client.get("/health").status_code == 200
