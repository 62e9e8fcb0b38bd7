"""Speed and memory benchmark of the whole framework (``make bench`` / ``python -m recsys_gnn.bench``).

Phases, per dataset (default Last.fm 2k and ml-latest-small): text-encoding throughput (first run into an
empty cache, then cached), seconds per training epoch of every model, full-ranking evaluation of all users,
and serving latency from an exported artifact (plus a synthetic 20k-item table). Each phase records its
peak resident memory, the machine load and how much CPU other processes took. The report (Markdown and
JSON, in ``experiments/bench/`` by default) states which of issue 6's targets are met.
"""

from recsys_gnn.bench.phases import BenchSettings
from recsys_gnn.bench.runner import run_bench

__all__ = ["BenchSettings", "run_bench"]
