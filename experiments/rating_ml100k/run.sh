#!/usr/bin/env bash
# Rating prediction on the five official MovieLens-100K folds (u1..u5) for the compressor and the baselines.
# Writes fold<k>/<model>/ (config.yaml, run_info.json with the seed, protocol.json, metrics.json, metrics.md,
# classification_report.{txt,json}, csv/metrics.csv), results.md, results.json and folds.log here.
# Needs the raw ml-100k files in $RECSYS_GNN_RAW/ml-100k (or the download cache) and the packaged MiniLM encoder.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" WANDB_MODE="${WANDB_MODE:-offline}" OMP_NUM_THREADS=1
.venv/bin/python -m recsys_gnn.rating.folds --out experiments/rating_ml100k --threads 1 "$@"
