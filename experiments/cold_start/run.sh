#!/usr/bin/env bash
# Study "cold_start": split=cold_items: 20% of items (seeded) never appear in training; half of their
# interactions are validation, half test. test_cold/* counts only cold items as targets, test_warm/* the others;
# ranking is always over the whole catalogue. At most EPOCHS epochs (default 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
EPOCHS=${EPOCHS:-20}
SWEEP=${SWEEP:-logs/studies/cold_start}
for domain in ${DOMAINS:-video music}; do
  $PY run.py -m domain=$domain split=cold_items model=pop,lm_content,mf,lightgcn_id '~gnn' '~graph' seed=$SEEDS \
    trainer.max_epochs=$EPOCHS logger=csv hydra.sweep.dir=$SWEEP/$domain/baselines \
    'hydra.sweep.subdir=${hydra.job.override_dirname}'
  $PY run.py -m domain=$domain split=cold_items graph=${GRAPHS:-user_item,hybrid} seed=$SEEDS \
    trainer.max_epochs=$EPOCHS logger=csv hydra.sweep.dir=$SWEEP/$domain/compressor \
    'hydra.sweep.subdir=${hydra.job.override_dirname}'
done
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/cold_start --by dataset.name,model._target_,graph._target_ \
  --metrics test/ndcg@10,test_warm/ndcg@10,test_cold/ndcg@10,test_cold/recall@20,test_warm/recall@20
