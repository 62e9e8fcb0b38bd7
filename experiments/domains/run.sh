#!/usr/bin/env bash
# Study "domains": every domain x graph type runs end to end on the real data here. Short runs
# (trainer.max_epochs=${EPOCHS:-5}): this checks the pipeline on each dataset, not tuned accuracy.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SWEEP=logs/studies/domains
rm -rf "$SWEEP"
$PY run.py -m domain=video,music,ecommerce,news graph=user_item,item_item,item_knn,hybrid \
  trainer.max_epochs=${EPOCHS:-5} logger=csv hydra.sweep.dir=$SWEEP 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/domains --by dataset.name,graph._target_ \
  --metrics test/ndcg@10,test/recall@20,test_impressions/auc,test_impressions/ndcg@10,fit/epochs
