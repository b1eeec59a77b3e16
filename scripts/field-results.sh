#!/usr/bin/env bash
# The newer methods beside LAQ, Judge Q and LookaheadKV on the embedded model (docs/results.md, "The newer
# methods"): the README grid's cases (needle 1K-4K at five depths, five RULER tasks, LongBench multi_news;
# 44 a cell, seed 0) at budgets 64-512 in both modes. Resumable: rerun to continue.
#   bash scripts/field-results.sh [OUT (default runs/field)] [PRESS LIST] [EXTRA eval options, e.g. --chunk-compress 512]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/field}
PRESSES=${2:-full,snapkv,laq,judgeq,lookaheadkv,chunkkv,criticalkv,defensivekv,layer-defensivekv,kvzip}
common=(--press "$PRESSES" --budget 64,128,256,512 --mode query-aware,query-agnostic --seed 0 --out "$OUT" ${3:-})
node bin/kvevict.js eval --dataset niah --depths 0,25,50,75,100 "${common[@]}"
node bin/kvevict.js eval --dataset ruler:niah_single_2,ruler:niah_multikey_1,ruler:niah_multivalue,ruler:vt,ruler:fwe --samples 4 "${common[@]}"
node bin/kvevict.js eval --dataset longbench:multi_news --samples 4 "${common[@]}"
