#!/usr/bin/env bash
# Study "domains": every domain x graph type runs end to end on the real data here (GCN compressor, 64-d).
# Short runs (trainer.max_epochs=EPOCHS, default 2): this checks the whole pipeline on each dataset and graph,
# it is not a tuned comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SWEEP=${SWEEP:-logs/studies/domains}
$PY run.py -m domain=${DOMAINS:-video,music,ecommerce,news} graph=user_item,item_item,item_knn,hybrid \
  trainer.max_epochs=${EPOCHS:-2} logger=csv compress.evaluate=[int8] hydra.sweep.dir=$SWEEP \
  'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/domains --by dataset.name,graph._target_ \
  --metrics test/ndcg@10,test/recall@20,val/ndcg@10,test_impressions/auc,test_impressions/mrr,test_impressions/ndcg@10,fit/epochs
