#!/usr/bin/env bash
# The reference model v2's pretraining, exactly as it is being run: every stage, resumable.
# Start or continue:  bash scripts/train-ref-v2.sh [extra pretrain options, e.g. --time-limit 150]
# A run folder that already holds a checkpoint is resumed exactly (the same data order as an uninterrupted
# run). Without one (a fresh clone), the run goes on from the committed folder models/kvevict-ref-v2
# (its weights and train-state.json, exported at every evaluation and at the end of each session's run).
# From step 5,146 (progress 0.8576) the run changed course (the model card says why): key-binding stages
# (the `bind` mix) and a learning-rate schedule restarted at a peak of 8e-4; the stages before are as run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${KVEVICT_REF2_RUN:-runs/ref-v2}
EXPORT=${KVEVICT_REF2_EXPORT:-models/kvevict-ref-v2}
from=()
if [ -f "$OUT/checkpoint.bin" ]; then from=(--resume)
elif [ -f "$EXPORT/train-state.json" ]; then from=(--continue-from "$EXPORT")
fi
exec node bin/kvevict.js pretrain --out "$OUT" --export "$EXPORT" "${from[@]}" \
  --vocab smollm2:8192 --export-dtype F16 \
  --layers 8 --hidden 256 --heads 4 --kv-heads 2 --intermediate 768 --rope-theta 100000 --max-positions 8192 --max-length 8192 \
  --seed 2 --steps 6000 --tokens-per-step 4096 --lr 2e-3 --warmup 100 --lr-restart 5146 --lr-restart-peak 8e-4 \
  --checkpoint-every 20 --eval-every 200 --eval-lengths 1024,2048 \
  --curriculum '0.03:256;0.25:256,512@copy;0.4:512,1024;0.55:1024,2048@retrieve;0.7:2048@lookup;0.85:2048,4096@retrieve;0.8576:2048,4096@retrieve;0.93:1024,2048@bind;0.97:4096@bind;1.01:8192@bind' \
  "$@"
