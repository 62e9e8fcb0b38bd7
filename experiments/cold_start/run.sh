#!/usr/bin/env bash
# Study "cold_start": 20% of items (seeded) never appear in training; test_cold/* counts only those items as
# targets, test_warm/* the others; ranking is always over the whole catalogue.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
SWEEP=logs/studies/cold_start
rm -rf "$SWEEP"
$PY run.py -m domain=video,music split=cold_items model=pop,lm_content,mf,lightgcn_id '~gnn' '~graph' \
  seed=$SEEDS logger=csv hydra.sweep.dir=$SWEEP/baselines 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY run.py -m domain=video,music split=cold_items graph=user_item,hybrid seed=$SEEDS logger=csv \
  hydra.sweep.dir=$SWEEP/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/cold_start \
  --by dataset.name,model._target_,graph._target_ \
  --metrics test/ndcg@10,test_warm/ndcg@10,test_cold/ndcg@10,test_cold/recall@20,test_warm/recall@20
