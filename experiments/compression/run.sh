#!/usr/bin/env bash
# Study "compression" (issue #4's table and the quality-vs-bytes curve), one command per dataset list:
#   bash experiments/compression/run.sh                          # video and music, seeds 1,2,3, <= 20 epochs
#   DOMAINS=video SEEDS=1 bash experiments/compression/run.sh
# Per domain, on the same data module, split and evaluator (split=auto: per-user random 8:1:1, full ranking):
#   baselines: pop, mf (BPR), lightgcn_id, lm_content (frozen LM teacher), lm_finetune (last LM block trained,
#              two-tower, in-batch negatives, lr 1e-4, LMFT_EPOCHS epochs, 32 tokens per item);
#   the GCN compressor at DIMS (compress.dim), each ranked from fp32/fp16/int8/binary tables (test_<scheme>/...);
#   a distilled student (DISTILL_DIM-d) trained with BPR + listwise distillation from the 64-d compressor.
# Then one table (experiments/compression/report.md) with every model x precision and the compression report's
# columns (train/serve params, serve bytes, bytes/item, LM at serving, latency re-measured for every row one after
# another at 1 CPU thread, quality, % of the LM teacher's NDCG@10), plus the per-dim summary and plots.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-1,2,3}
EPOCHS=${EPOCHS:-20}
DIMS=${DIMS:-8,16,32,64,128}
DISTILL_DIM=${DISTILL_DIM:-16}
LMFT_EPOCHS=${LMFT_EPOCHS:-3}
SWEEP=${SWEEP:-logs/studies/compression}
for domain in ${DOMAINS:-video music}; do
  common="domain=$domain trainer.max_epochs=$EPOCHS logger=csv"
  $PY run.py -m $common model=pop,mf,lightgcn_id,lm_content '~gnn' '~graph' seed=$SEEDS \
    hydra.sweep.dir=$SWEEP/$domain/baselines 'hydra.sweep.subdir=${model._target_}_seed${seed}'
  $PY run.py -m domain=$domain logger=csv model=lm_finetune '~gnn' '~graph' seed=$SEEDS optimizer.lr=1e-4 \
    trainer.max_epochs=$LMFT_EPOCHS hydra.sweep.dir=$SWEEP/$domain/baselines \
    'hydra.sweep.subdir=${model._target_}_seed${seed}'
  $PY run.py -m $common compress.dim=$DIMS seed=$SEEDS hydra.sweep.dir=$SWEEP/$domain/compressor \
    'hydra.sweep.subdir=dim${compress.dim}_seed${seed}'
  for seed in ${SEEDS//,/ }; do
    $PY run.py $common model=distill compress.dim=$DISTILL_DIM seed=$seed \
      model.teacher=$SWEEP/$domain/compressor/dim64_seed$seed \
      hydra.run.dir=$SWEEP/$domain/distill/dim${DISTILL_DIM}_seed$seed
  done
done
[ -n "${NO_AGGREGATE:-}" ] || $PY -m recsys_gnn.compress.table $SWEEP --out experiments/compression --threads 1
[ -n "${NO_AGGREGATE:-}" ] || $PY -m recsys_gnn.aggregate $SWEEP --out experiments/compression --by dataset.name,model._target_,compress.dim \
  --metrics test/ndcg@10,test/recall@10,test_fp16/ndcg@10,test_int8/ndcg@10,test_binary/ndcg@10,fit/seconds
# Learned PQ/RQ codes (issue #13) on the leaderboard's best model, seeds 1-3 -> learned_best.md; needs that study's
# job folders with their tables (bash experiments/leaderboard/run.sh first); NO_LEARNED=1 skips this step.
[ -n "${NO_LEARNED:-}" ] || $PY experiments/compression/learned_best.py
