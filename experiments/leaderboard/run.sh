#!/usr/bin/env bash
# Study "leaderboard" (issue #14): the compressor vs. the strongest id-based recommenders, every model converged.
#   bash experiments/leaderboard/run.sh                       # all datasets and models in study.yaml
#   DATASETS=video MODELS=mf_bpr,compressor bash experiments/leaderboard/run.sh   # a slice
#   STAGE=table bash experiments/leaderboard/run.sh           # only rewrite results.md from finished jobs
#   REUSE_CHOSEN=1 STAGE=final bash ...                        # final seeds from the recorded chosen.json
#   RESTORE=1 REUSE_CHOSEN=1 bash ...   # fresh checkout: seed job folders from the committed runs/ copies first
#   .venv/bin/python experiments/leaderboard/readme_tables.py   # then: README's leaderboard tables from results.csv
# Resumable: job folders under logs/studies/leaderboard that hold metrics.json are skipped; stop and rerun at will.
# Two jobs at a time, one thread each (JOBS=2). Stages: tune (seed 1, each model's grid), final (the chosen
# point on seeds 1-3), table (results.md/results.csv + runs/ copies). The RecBole reference needs RecBole 1.2.1
# beside the project (see recsys_gnn/bench/recbole_ref.py); RECBOLE_PATH points at it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RECBOLE_PATH=${RECBOLE_PATH:-/tmp/recbole-pkgs}
if [ ! -d "$RECBOLE_PATH/recbole" ]; then
  .venv/bin/pip install -q --no-deps --target "$RECBOLE_PATH" recbole==1.2.1 texttable tabulate thop colorama==0.4.4
fi
export PYTHONPATH="$RECBOLE_PATH${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline}
args=(experiments/leaderboard/study.yaml --stage "${STAGE:-all}" --jobs "${JOBS:-2}")
[ -n "${REUSE_CHOSEN:-}" ] && args+=(--reuse-chosen)
[ -n "${RESTORE:-}" ] && args+=(--restore)
[ -n "${DATASETS:-}" ] && args+=(--datasets "$DATASETS")
[ -n "${MODELS:-}" ] && args+=(--models "$MODELS")
$PY -m recsys_gnn.study "${args[@]}"
