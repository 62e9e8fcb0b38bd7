#!/usr/bin/env bash
# Study "main": compressor (4 GNNs) vs. baselines on video and music; default config otherwise
# (user-item graph, 64-d, split=auto -> per-user random 8:1:1, BPR, early stopping on val/ndcg@10).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
SWEEP=logs/studies/main
rm -rf "$SWEEP"
$PY run.py -m domain=video,music model=pop,lm_content,mf,lightgcn_id '~gnn' '~graph' seed=$SEEDS \
  hydra.sweep.dir=$SWEEP/baselines 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY run.py -m domain=video,music gnn=gcn,gat,lightgcn,sage seed=$SEEDS \
  hydra.sweep.dir=$SWEEP/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/main --by dataset.name,model._target_,gnn._target_ \
  --metrics test/ndcg@10,test/recall@10,test/recall@20,test/coverage@10,test_int8/ndcg@10,val/ndcg@10
