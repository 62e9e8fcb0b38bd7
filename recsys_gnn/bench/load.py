"""Loopback HTTP load test of ``python -m recsys_gnn.serve``: requests/s and latency from 1 and 8 clients.

The service runs in a subprocess on 127.0.0.1 (a free port, access log off, 1 torch thread per worker); client
threads in this process each hold one keep-alive ``http.client`` connection and send ``GET /recommend`` for
random known users (``k=10``, seen items excluded) until a fixed number of requests is done or a time cap
passes. Clients and server share this machine's cores, so the figures are those of the whole loop on it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from recsys_gnn.bench.machine import measure_phase, percentile
from recsys_gnn.bench.phases import BenchSettings, Record, make_record

log = logging.getLogger(__name__)

PHASE = "load"
NOTE = (
    "phase `load`: python -m recsys_gnn.serve in a subprocess on 127.0.0.1 (access log off, 1 torch thread per "
    "worker), driven by http.client keep-alive client threads of the bench process (GET /recommend, k=10, "
    "random known users); clients and server share the machine's cores. `peak RSS MB` and `others' cores` "
    "are those of the clients' process (the server's CPU is taken out of `others' cores`; it is `server_cpu_s` "
    "in the JSON); the run stops at --load-requests or --load-seconds"
)


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long the load test drives the service.

    Args:
        requests: timed requests per (workers, clients) run; 0 skips the load test.
        clients: concurrent client threads of each run.
        workers: uvicorn worker counts; the service is started once per count.
        max_seconds: time cap of one run (it stops at ``requests`` or at this, whichever comes first).
        warmup: untimed requests per client before each run.
        startup_timeout_s: how long the service may take to answer ``/health``.
        k: items per request.
    """

    requests: int = 2000
    clients: Sequence[int] = (1, 8)
    workers: Sequence[int] = (1, 2)
    max_seconds: float = 15.0
    warmup: int = 20
    startup_timeout_s: float = 120.0
    k: int = 10

    @classmethod
    def from_bench(cls, settings: BenchSettings) -> LoadSettings:
        """The ``load`` entry of ``settings.extra`` (set by ``--load-*`` flags), defaults for the rest."""
        return cls(**settings.extra.get("load", {}))


@dataclass
class Service:
    """A running ``python -m recsys_gnn.serve`` subprocess."""

    proc: subprocess.Popen
    port: int
    log_tail: deque

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the service and its worker processes."""
        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total


def _get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status


@contextmanager
def start_service(artifact: Path, workers: int = 1, startup_timeout_s: float = 120.0) -> Iterator[Service]:
    """Start the service on a free loopback port and wait until every worker has started and ``/health``
    answers; it is stopped (SIGTERM, then SIGKILL of its process group) when the block ends."""
    cmd = [
        sys.executable,
        "-m",
        "recsys_gnn.serve",
        str(artifact),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(workers),
        "--threads",
        "1",
        "--no-access-log",
        "--log-level",
        "info",
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers go down with it
    )
    lines: queue.Queue[str] = queue.Queue()
    tail: deque = deque(maxlen=40)

    def pump() -> None:
        for line in proc.stderr:
            tail.append(line.rstrip())
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        port, started, deadline = None, 0, time.monotonic() + startup_timeout_s
        while port is None or started < workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"service not up within {startup_timeout_s:.0f} s: {list(tail)[-5:]}")
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None:
                    raise RuntimeError(f"service exited with {proc.returncode}: {list(tail)[-5:]}") from None
                continue
            m = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
            started += "Application startup complete" in line
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                ok = _get(conn, "/health") == 200
                conn.close()
                if ok:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"/health did not answer within {startup_timeout_s:.0f} s")
            time.sleep(0.1)
        yield Service(proc, port, tail)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def drive(
    port: int,
    paths: Sequence[str],
    requests: int,
    clients: int,
    max_seconds: float = 15.0,
    warmup: int = 20,
) -> dict[str, Any]:
    """Send ``requests`` GETs (cycling through ``paths``) from ``clients`` threads, each on its own keep-alive
    connection, stopping early at ``max_seconds``.

    Returns:
        ``requests`` (answered 200), ``errors`` (other statuses and connection failures), ``wall_s``,
        ``requests_per_s`` (200s per second of wall time), ``p50_ms``/``p99_ms`` (latency of the 200s),
        ``stopped_by_time``.
    """
    lock = threading.Lock()
    issued = 0
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        nonlocal issued
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for j in range(warmup):
                try:
                    _get(conn, paths[(c + j * clients) % len(paths)])
                except OSError:
                    conn.close()
            start.wait()
            while True:
                with lock:
                    i = issued
                    issued += 1
                if i >= requests or time.perf_counter() > deadline[0]:
                    return
                t0 = time.perf_counter()
                try:
                    status = _get(conn, paths[i % len(paths)])
                except (OSError, http.client.HTTPException):
                    errors[c] += 1
                    conn.close()  # reconnects on the next request
                    continue
                if status == 200:
                    latencies[c].append(time.perf_counter() - t0)
                else:
                    errors[c] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + max_seconds + 60  # warmup finishes before the clock starts
    start.wait()
    t0 = time.perf_counter()
    deadline[0] = t0 + max_seconds
    for t in threads:
        t.join(timeout=max_seconds + 30)
    wall = time.perf_counter() - t0
    ms = [x * 1000 for lat in latencies for x in lat]
    return {
        "requests": len(ms),
        "errors": int(sum(errors)),
        "wall_s": wall,
        "requests_per_s": len(ms) / wall if wall > 0 else float("nan"),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "stopped_by_time": len(ms) + sum(errors) < requests,
    }


def recommend_paths(artifact: Path, n: int = 1000, k: int = 10, seed: int = 0) -> list[str]:
    """``/recommend`` request paths for ``n`` random known users of ``artifact`` (read from its index)."""
    users = json.loads((Path(artifact) / "index.json").read_text())["user_ids"]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(users), size=n)
    return [f"/recommend?{urllib.parse.urlencode({'user': users[i], 'k': k})}" for i in picks]


def load_test(artifact: Path, load: LoadSettings, seed: int = 0) -> list[dict[str, Any]]:
    """Run every (workers, clients) combination of ``load`` against ``artifact``; one result dict each
    (:func:`drive`'s fields plus ``workers``, ``clients``, ``server_cpu_s``, and ``load1_start``,
    ``others_cores``, ``rss_peak_mb`` of this (the clients') process)."""
    paths = recommend_paths(artifact, k=load.k, seed=seed)
    out = []
    for workers in load.workers:
        with start_service(artifact, workers, load.startup_timeout_s) as svc:
            for clients in load.clients:
                cpu0 = svc.cpu_seconds()
                with measure_phase() as st:
                    res = drive(svc.port, paths, load.requests, clients, load.max_seconds, load.warmup)
                server_cpu = svc.cpu_seconds() - cpu0
                stats = st.as_dict()
                # measure_phase counts the service's CPU as other processes' work: take it out
                stats["others_cores"] = round(
                    max(0.0, st.others_cores - server_cpu / max(st.wall_s, 1e-9)), 2
                )
                res.update(workers=workers, clients=clients, server_cpu_s=round(server_cpu, 2), **stats)
                log.info(
                    "load: %d worker(s), %d client(s): %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors",
                    workers,
                    clients,
                    res["requests_per_s"],
                    res["p50_ms"],
                    res["p99_ms"],
                    res["errors"],
                )
                out.append(res)
    return out


def load_records(settings: BenchSettings, dataset: str, label: str, artifact: Path) -> list[Record]:
    """The load test as bench records (requests/s, p50, p99, errors per run); an error record if it fails.

    Nothing when ``--load-requests 0``.
    """
    load = LoadSettings.from_bench(settings)
    if load.requests < 1:
        return []
    try:
        results = load_test(Path(artifact), load, seed=settings.seed)
    except Exception as err:  # the rest of the bench goes on
        log.exception("%s / %s / HTTP load test failed: %s", dataset, PHASE, err)
        return [
            {
                "dataset": dataset,
                "phase": PHASE,
                "name": f"{label}, HTTP load test",
                "metric": "-",
                "error": f"{type(err).__name__}: {err}",
            }
        ]
    recs: list[Record] = []
    for r in results:
        w, c = r["workers"], r["clients"]
        name = f"{label}, {w} worker{'s' * (w > 1)}, {c} client{'s' * (c > 1)}"
        info = {
            k: r[k]
            for k in (
                "workers",
                "clients",
                "requests",
                "errors",
                "wall_s",
                "server_cpu_s",
                "stopped_by_time",
                "rss_peak_mb",
                "rss_delta_mb",
                "load1_start",
                "others_cores",
            )
        }
        info["request"] = f"GET /recommend k={load.k} over loopback (http.client keep-alive)"
        recs += [
            make_record(
                dataset, PHASE, name, "HTTP requests/s", [r["requests_per_s"]], "req/s", None, **info
            ),
            make_record(dataset, PHASE, name, "HTTP latency p50", [r["p50_ms"]], "ms", None, **info),
            make_record(dataset, PHASE, name, "HTTP latency p99", [r["p99_ms"]], "ms", None, **info),
            make_record(dataset, PHASE, name, "HTTP errors", [r["errors"]], "count", None, **info),
        ]
    return recs
