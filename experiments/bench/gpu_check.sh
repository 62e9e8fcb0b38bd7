#!/usr/bin/env bash
# GPU check: one epoch of each GNN with trainer=gpu and the same seeded run on the CPU, then the evaluation;
# prints a table of the largest metric difference per case and exits non-zero when one is beyond --atol or a
# run fails. Without a CUDA device it prints "gpu-check SKIPPED" and exits 0 (--require-gpu: exit 2).
#
# Prerequisites: `make install` (CPU-only DGL wheel: the CSR-backed cases - lightgcn, gcn, sage, lightgcn_id - run;
# gat, the classic stacks and lightgcn-dgl are reported as skipped) or `make install-cuda` (all cases); a GPU + driver;
# the dataset's raw files under $RECSYS_GNN_RAW (default: ../shared/data beside the repository; the default
# dataset is ml-latest-small) and the encoder (packaged MiniLM, offline).
#
# Usage: bash experiments/bench/gpu_check.sh [--cases lightgcn,gcn] [--epochs 1] [--atol 0.005]
#        [--require-gpu] [hydra overrides, e.g. dataset=ml-100k]
# Results: experiments/bench/gpu_check/results.md and results.json (GPU_CHECK_OUT to change).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
    echo "gpu-check: $PY not found; run \`make install\` (or \`make install-cuda\`) first" >&2
    exit 1
fi
export RECSYS_GNN_RAW="${RECSYS_GNN_RAW:-$(cd .. && pwd)/shared/data}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export WANDB_MODE="${WANDB_MODE:-offline}"
export TOKENIZERS_PARALLELISM=false
exec "$PY" -m recsys_gnn.bench.gpu_check --out "${GPU_CHECK_OUT:-experiments/bench/gpu_check}" "$@"
