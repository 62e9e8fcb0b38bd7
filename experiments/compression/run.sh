#!/usr/bin/env bash
# Study "compression": quality vs. size. GCN compressor at 8-128 dims (64 is the default); every run also ranks
# with its fp16/int8/binary tables (test_<scheme>/...) and writes compression.md with the frozen-LM teacher.
#   bash experiments/compression/run.sh               # video, seed 2024, dims 8,16,32,64,128
#   DOMAINS=music EPOCHS=8 DIMS=8,16,32,128 SWEEP=logs/studies/compression/music bash experiments/compression/run.sh
#   (the published table: video dims 8,16,32,128 at 20 epochs + this music line; 64-d rows are in experiments/main)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2024}
EPOCHS=${EPOCHS:-20}
SWEEP=${SWEEP:-logs/studies/compression}
$PY run.py -m domain=${DOMAINS:-video} compress.dim=${DIMS:-8,16,32,64,128} seed=$SEEDS trainer.max_epochs=$EPOCHS \
  logger=csv hydra.sweep.dir=$SWEEP 'hydra.sweep.subdir=${hydra.job.override_dirname}'
$PY -m recsys_gnn.aggregate ${AGGREGATE:-logs/studies/compression} --out experiments/compression --by dataset.name,compress.dim \
  --metrics test/ndcg@10,test_fp16/ndcg@10,test_int8/ndcg@10,test_binary/ndcg@10,test/recall@10
