"""What the benchmark records about the machine: CPU, threads, load, contention, peak memory, and timing helpers."""

from __future__ import annotations

import os
import platform
import re
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 512, repeats: int = 15) -> float:
    """Median one-thread float32 ``n x n`` matmul speed in GFLOP/s.

    A quick probe of how much CPU the process actually gets (it drops when other jobs share the cores).
    """
    a = torch.randn(n, n)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a @ a
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / float(np.median(times)) / 1e9


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, memory, thread settings and library versions."""
    import dgl
    import pytorch_lightning as pl

    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dgl": dgl.__version__,
        "pytorch_lightning": pl.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _vm_kb(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _busy_cpu_seconds() -> float:
    t = psutil.cpu_times()
    return float(
        sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    )


def _own_cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


@dataclass
class PhaseStats:
    """Resources of one measured phase (filled by :func:`measure_phase`)."""

    wall_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    peak_method: str = ""
    load1_start: float = 0.0
    load1_end: float = 0.0
    others_cores: float = 0.0  # mean number of cores busy with other processes during the phase
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rss_delta_mb(self) -> float:
        """Peak resident memory during the phase above the resident memory at its start."""
        return max(0.0, self.rss_peak_mb - self.rss_start_mb)

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "rss_start_mb": round(self.rss_start_mb, 1),
            "rss_peak_mb": round(self.rss_peak_mb, 1),
            "rss_delta_mb": round(self.rss_delta_mb, 1),
            "peak_method": self.peak_method,
            "load1_start": round(self.load1_start, 2),
            "load1_end": round(self.load1_end, 2),
            "others_cores": round(self.others_cores, 2),
        }


@contextmanager
def measure_phase() -> Iterator[PhaseStats]:
    """Measure wall time, peak resident memory, load and other processes' CPU use over a ``with`` block.

    Peak memory: the kernel's high-water mark (``VmHWM``) is reset at the start (``/proc/self/clear_refs``),
    so the peak is that of this phase alone; where that is not possible, ``ru_maxrss`` is used and the
    peak only shows when the phase exceeds every earlier peak of the process (``peak_method`` says which).
    ``others_cores`` is the machine's busy CPU time minus this process's, divided by the wall time.
    """
    stats = PhaseStats()
    reset = _reset_peak() and _vm_kb("VmHWM") is not None
    stats.peak_method = "VmHWM reset per phase" if reset else "ru_maxrss (process-wide peak)"
    stats.rss_start_mb = psutil.Process().memory_info().rss / 2**20
    stats.load1_start = os.getloadavg()[0]
    busy0, own0 = _busy_cpu_seconds(), _own_cpu_seconds()
    t0 = time.perf_counter()
    try:
        yield stats
    finally:
        stats.wall_s = time.perf_counter() - t0
        busy1, own1 = _busy_cpu_seconds(), _own_cpu_seconds()
        stats.others_cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / max(stats.wall_s, 1e-9)
        stats.load1_end = os.getloadavg()[0]
        if reset:
            stats.rss_peak_mb = (_vm_kb("VmHWM") or 0) / 1024
        else:
            stats.rss_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(values: Sequence[float]) -> float:
    """Median of ``values`` (NaN when empty)."""
    return float(np.median(values)) if len(values) else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile of ``values`` (NaN when empty)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")
