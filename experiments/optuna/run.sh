#!/usr/bin/env bash
# Study "optuna" (issue #5): an Optuna TPE search (conf/hparams_search/compressor_optuna.yaml) over lr, dim,
# layers, dropout and negatives, maximising val/ndcg@10, for the GAT compressor on video (the weakest GNN of the
# grid study with default settings). Every trial is a job folder with its W&B offline run (logger=default);
# the best trial is in <sweep>/optimization_results.yaml, copied here with the aggregated table and plots.
#   bash experiments/optuna/run.sh                     # 10 trials, <= 20 epochs each, seed 1
#   TRIALS=50 GNN=sage DOMAIN=music bash experiments/optuna/run.sh
# The committed results.md predates the current recipe: it searched the classic GAT (now gnn=gat_classic) with
# BPR and a gnn.dropout axis (commit 95ddff4); the search space now follows the default recipe (lr, dim, layers,
# softmax temperature, negatives), so a rerun answers the question for the current gnn=gat.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SWEEP=${SWEEP:-logs/studies/optuna}
$PY run.py -m hparams_search=compressor_optuna domain=${DOMAIN:-video} gnn=${GNN:-gat} seed=${SEED:-1} \
  trainer.max_epochs=${EPOCHS:-20} hydra.sweeper.n_trials=${TRIALS:-10} hydra.sweep.dir=$SWEEP
if [ -z "${NO_AGGREGATE:-}" ]; then
  $PY -m recsys_gnn.aggregate $SWEEP --out experiments/optuna \
    --by optimizer.lr,compress.dim,gnn.num_layers,module.temperature,data.num_negatives \
    --metrics val/ndcg@10,test/ndcg@10,test/recall@10,fit/epochs
  cp $SWEEP/optimization_results.yaml experiments/optuna/
fi
