#!/usr/bin/env bash
# Study "cold_start": split=cold_items: 20% of items (seeded) never appear in training; half of their
# interactions are validation, half test. test_cold/* counts only cold items as targets and ranks them against
# the whole catalogue; test_cold_only/* ranks within the cold items only (a catalogue of new items); test_warm/*
# the others. The compressor runs on the user-item graph (GRAPHS=user_item,hybrid adds user-item + text kNN), and with
# model.cold_dropout=0.3 (30% of items trained from text alone each step). At most EPOCHS epochs (default 20),
# seeds SEEDS (default 1,2,3; split.seed follows the seed, so each seed draws other cold items).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-1,2,3}
EPOCHS=${EPOCHS:-20}
SWEEP=${SWEEP:-logs/studies/cold_start}
for domain in ${DOMAINS:-video music}; do
  $PY run.py -m domain=$domain split=cold_items 'split.seed=${seed}' model=pop,lm_content,mf,lightgcn_id '~gnn' '~graph' seed=$SEEDS \
    trainer.max_epochs=$EPOCHS logger=csv hydra.sweep.dir=$SWEEP/$domain/baselines \
    'hydra.sweep.subdir=${hydra.job.override_dirname}' 'hydra.job.config.override_dirname.exclude_keys=[split.seed]'
  $PY run.py -m domain=$domain split=cold_items 'split.seed=${seed}' graph=${GRAPHS:-user_item} model.cold_dropout=0.0,0.3 \
    seed=$SEEDS trainer.max_epochs=$EPOCHS logger=csv hydra.sweep.dir=$SWEEP/$domain/compressor \
    'hydra.sweep.subdir=${hydra.job.override_dirname}' 'hydra.job.config.override_dirname.exclude_keys=[split.seed]'
done
[ -n "${NO_AGGREGATE:-}" ] || $PY -m recsys_gnn.aggregate $SWEEP --out experiments/cold_start \
  --by dataset.name,model._target_,graph._target_,model.cold_dropout \
  --metrics test/ndcg@10,test_warm/ndcg@10,test_cold/ndcg@10,test_cold_only/ndcg@10,test_cold_only/recall@20
