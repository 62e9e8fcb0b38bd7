#!/usr/bin/env bash
# Study "compression": quality vs. size. GCN compressor at 8-128 dims; every run also ranks with its
# fp16/int8/binary tables (test_<scheme>/...) and writes compression.md with the LM teacher beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
SWEEP=logs/studies/compression
rm -rf "$SWEEP"
$PY run.py -m domain=${DOMAINS:-video,music} compress.dim=8,16,32,64,128 seed=$SEEDS logger=csv \
  hydra.sweep.dir=$SWEEP 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/compression --by dataset.name,compress.dim \
  --metrics test/ndcg@10,test_fp16/ndcg@10,test_int8/ndcg@10,test_binary/ndcg@10,test/recall@10
