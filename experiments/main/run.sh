#!/usr/bin/env bash
# Study "main": compressor (4 GNNs, user-item graph, 64-d) vs. baselines, default config otherwise
# (split=auto -> per-user random 8:1:1, BPR, Adam 5e-3, early stopping on val/ndcg@10 with patience 5),
# at most EPOCHS epochs (default 20) for every trained model.
#   bash experiments/main/run.sh                       # video and music, seed 2024
#   DOMAINS=video SEEDS=1,2,3 bash experiments/main/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
EPOCHS=${EPOCHS:-20}
GNNS=${GNNS:-gcn,gat,lightgcn,sage}
BASELINES=${BASELINES-pop,lm_content,mf,lightgcn_id}   # empty: skip the baselines
SWEEP=${SWEEP:-logs/studies/main}
for domain in ${DOMAINS:-video music}; do
  if [ -n "$BASELINES" ]; then
    $PY run.py -m domain=$domain model=$BASELINES '~gnn' '~graph' seed=$SEEDS trainer.max_epochs=$EPOCHS \
      hydra.sweep.dir=$SWEEP/$domain/baselines 'hydra.sweep.subdir=${hydra.job.override_dirname}'
  fi
  $PY run.py -m domain=$domain gnn=$GNNS seed=$SEEDS trainer.max_epochs=$EPOCHS \
    hydra.sweep.dir=$SWEEP/$domain/compressor 'hydra.sweep.subdir=${hydra.job.override_dirname}'
done
$PY -m recsys_gnn.aggregate $SWEEP --out experiments/main --by dataset.name,model._target_,gnn._target_ \
  --metrics test/ndcg@10,test/recall@10,test/recall@20,test/coverage@10,test_int8/ndcg@10,val/ndcg@10,fit/epochs
