#!/usr/bin/env bash
# Study "news" (issue #15): NeMig EN (domain=news defaults: training on the clicks of training impressions
# against K=4 unclicked candidates of the same impression, users = click history of the impression scored,
# selection on val_impressions/auc with early stopping, patience 5). Every row is scored on the same test
# impressions (each user's last impression by id). Rows: random, pop, ctr (smoothed training CTR), lm_content
# (frozen MiniLM, user = mean of the history articles), and the compressor with gnn=lightgcn and gnn=gat.
#   bash experiments/news/run.sh                  # seeds 1,2,3
#   SEEDS=1 bash experiments/news/run.sh       # CSEEDS=1: compressor rows with seed 1 only (results.md)
# pop, ctr and lm_content have no randomness: they run with seed 1 only. Then
#   .venv/bin/python experiments/news/summarize.py logs/studies/news > experiments/news/results.md
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-1,2,3}
EPOCHS=${EPOCHS:-60}
SWEEP=${SWEEP:-logs/studies/news}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
sub='hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY run.py -m domain=news model=pop,ctr,lm_content seed=1 logger=csv hydra.sweep.dir=$SWEEP/fixed "$sub"
$PY run.py -m domain=news model=random seed=$SEEDS logger=csv hydra.sweep.dir=$SWEEP/random "$sub"
# +trainer.inference_mode=false: works around "Inference tensors do not track version counter" that gnn=gat
# (CSR propagation cache, recsys_gnn/graph/spmm.py) raised in the post-fit validation on 2026-12-07
$PY run.py -m domain=news gnn=lightgcn,gat seed=${CSEEDS:-$SEEDS} trainer.max_epochs=$EPOCHS \
  +trainer.inference_mode=false logger=csv hydra.sweep.dir=$SWEEP/compressor "$sub"
