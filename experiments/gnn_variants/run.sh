#!/usr/bin/env bash
# Study "gnn_variants" (issue #14 item 3): the reworked gnn=gat / gnn=sage against the default compressor
# (gnn=lightgcn), default recipe (conf/model/compressor.yaml), seed 1, early stopping patience 10, one thread.
#   bash experiments/gnn_variants/run.sh                          # video (ml-latest-small)
#   DOMAIN=music GNNS="lightgcn gat sage" bash experiments/gnn_variants/run.sh
# Each run's folder is $OUT/<domain>_<gnn>; metrics.json holds test/ndcg@10 and fit/seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/gnnv}
DOMAIN=${DOMAIN:-video}
export RECSYS_GNN_RAW=${RECSYS_GNN_RAW:-/work/shared/data} HF_HUB_OFFLINE=1 WANDB_MODE=offline
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for gnn in ${GNNS:-lightgcn gat sage}; do
  $PY run.py domain=$DOMAIN gnn=$gnn seed=1 callbacks.early_stopping.patience=10 trainer.max_epochs=300 \
    logger=csv ++compress.report=false 'compress.evaluate=[]' hydra.run.dir=$OUT/${DOMAIN}_$gnn
done
