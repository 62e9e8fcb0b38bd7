#!/usr/bin/env bash
# Study "grid" (issue #5, study 1): domains x GNN variants x graph types vs. the baselines, 3 seeds.
#   bash experiments/grid/run.sh                                   # video, music, ecommerce; seeds 1,2,3
#   DOMAINS="music" SEEDS=1 EPOCHS=4 bash experiments/grid/run.sh  # a smaller slice
# Per domain (its default dataset: video=ml-latest-small, music=lastfm, ecommerce=unisrec-scientific), with the
# default protocol (split=auto, full ranking, 64-d, BPR, Adam 5e-3, early stopping on val/ndcg@10, patience 5)
# and at most EPOCHS epochs (default 20) for every trained model:
#   1. GNN variants: gnn=gcn,gat,lightgcn,sage on graph=user_item (the 2-domain x 4-gnn sweep, here 3 domains)
#   2. graph types: gnn=gcn on graph=item_item,item_knn,hybrid (user_item/gcn is in 1.)
#   3. baselines pop, mf, lightgcn_id, lm_content
# (GRID=full runs every gnn x graph pair instead of 1. and 2.: 16 cells per domain, about twice the time.)
# Every job logs to CSV and to a W&B offline run (grouped by sweep, tagged with domain/graph/gnn/encoder/compress).
# The seed sets the split (split=auto follows it), the initialisation and the negatives. Aggregated (mean +- std over seeds) into
# experiments/grid/results.md with plots.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-1,2,3}
EPOCHS=${EPOCHS:-20}
SWEEP=${SWEEP:-logs/studies/grid}
for domain in ${DOMAINS:-video music ecommerce}; do
  common="domain=$domain seed=$SEEDS trainer.max_epochs=$EPOCHS compress.evaluate=[int8]"
  if [ "${GRID:-}" = full ]; then
    $PY run.py -m $common gnn=gcn,gat,lightgcn,sage graph=user_item,item_item,item_knn,hybrid \
      hydra.sweep.dir=$SWEEP/$domain/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
  else
    $PY run.py -m $common gnn=gcn,gat,lightgcn,sage graph=user_item \
      hydra.sweep.dir=$SWEEP/$domain/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
    $PY run.py -m $common gnn=gcn graph=item_item,item_knn,hybrid \
      hydra.sweep.dir=$SWEEP/$domain/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
  fi
  $PY run.py -m $common model=pop,mf,lightgcn_id,lm_content '~gnn' '~graph' hydra.sweep.dir=$SWEEP/$domain/baselines \
    'hydra.sweep.subdir=${hydra.job.override_dirname}'
done
[ -n "${NO_AGGREGATE:-}" ] || $PY -m recsys_gnn.aggregate $SWEEP --out experiments/grid \
  --by dataset.name,model._target_,gnn._target_,graph._target_ \
  --metrics test/ndcg@10,test/recall@10,test/recall@20,test/coverage@10,test_int8/ndcg@10,val/ndcg@10,fit/epochs,fit/seconds
