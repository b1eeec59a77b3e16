#!/usr/bin/env bash
# Eviction methods at the papers' scale on the second reference model (docs/results.md, "At the papers' scale"):
# the 11 RULER tasks that need no QA file, generated at 4,096 tokens (19 cases a task, 209 a cell, seed 0), at
# budgets 128-1,024 in both modes (LENGTH=8192 for RULER at 8K; FAMILY=niah for the classic needle at 1K-8K tokens
# and 51 depths, 204 cases a cell). Resumable: rerun to continue. Summarise with
# node scripts/field-summary.mjs OUT laq,laq++,judgeq,judgeq+laq
#   bash scripts/papers-scale.sh [OUT (default runs/papers)] [PRESS LIST] [MODES] [EXTRA eval options]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=models/kvevict-ref-v2
OUT=${1:-runs/papers}
# judgeq reads the model's own soft tokens (models/kvevict-ref-v2/judgeq.safetensors)
PRESSES=${2:-full,snapkv,laq,laq++,judgeq,judgeq+laq}
MODES=${3:-query-aware,query-agnostic}
TASKS=ruler:niah_single_1,ruler:niah_single_2,ruler:niah_single_3,ruler:niah_multikey_1,ruler:niah_multikey_2,ruler:niah_multikey_3
TASKS=$TASKS,ruler:niah_multivalue,ruler:niah_multiquery,ruler:vt,ruler:cwe,ruler:fwe
if [ "${FAMILY:-ruler}" = niah ]; then
  TASKS=niah
  LENGTH=${LENGTH:-1024,2048,4096,8192}
  SAMPLING=(--depths "$(seq -s, 0 2 100)")
else
  LENGTH=${LENGTH:-4096}
  SAMPLING=(--samples 19)
fi
node bin/kvevict.js eval --model "$MODEL" --dataset "$TASKS" --lengths "$LENGTH" "${SAMPLING[@]}" --seed 0 \
  --press "$PRESSES" --budget 128,256,512,1024 --mode "$MODES" --out "$OUT" ${4:-}
