/**
 * Fidelity of eviction methods on Judge Q's held-out prompts: the oracle hit rate and attention recall of
 * methods.md ("Measuring fidelity"), as the evaluation computes them (src/eval/fidelity.ts). The oracle's
 * queries are those of the rows that chose the model's own greedy response with the full cache (the last
 * prompt row, then each response row but the last). One prefill per prompt serves every method and budget.
 */
import { attentionMass, attentionRecall, oracleHitRate, promptKeys, queryRecorder } from '../../eval/fidelity.js';
import { prefill } from '../../generate/pipeline.js';
import type { LlamaModel } from '../../model/llama.js';
import { makePress, type PressOptions } from '../../press/index.js';
import type { Press } from '../../press/types.js';
import { TRAINING_KV_DTYPE, type JudgeqExample } from './objective.js';

export interface MethodSpec {
  /** label in tables */
  label: string;
  name: string;
  options: PressOptions;
}

export interface FidelityCell {
  label: string;
  budget: number;
  /** mean over the prompts longer than the budget, 0..100 */
  hitRate: number;
  recall: number;
  /** prompts that count (longer than the budget) */
  n: number;
}

/** Mean oracle hit rate and attention recall of each method at each budget over `examples`. */
export async function heldOutFidelity(
  model: LlamaModel,
  examples: readonly JudgeqExample[],
  methods: readonly MethodSpec[],
  budgets: readonly number[],
): Promise<FidelityCell[]> {
  const cfg = model.config;
  const sums = new Map<string, { hit: number; recall: number; n: number }>();
  const key = (label: string, b: number) => `${label}@${b}`;
  for (const ex of examples) {
    const L = ex.prompt.length,
      R = ex.response.length;
    const presses: { label: string; budget: number; press: Press }[] = [];
    for (const b of budgets) {
      if (L <= b) continue;
      for (const m of methods) presses.push({ label: m.label, budget: b, press: makePress(m.name, { ...m.options, budget: b }) });
    }
    if (presses.length === 0) continue;
    const queries = queryRecorder(cfg.numLayers);
    for (let p = L - 1; p < L + R - 1; p++) queries.wanted.add(p);
    const run = prefill(model, ex.prompt, {
      record: presses.map((p) => p.press.capture(L)),
      observer: queries.observer,
      eosTokenIds: cfg.eosTokenIds,
      kvDtype: TRAINING_KV_DTYPE,
    });
    const cache = run.cache;
    const keys = promptKeys(cache, L);
    if (R > 1) {
      const rest = Int32Array.from({ length: R - 1 }, (_, i) => L + i);
      model.forward({ tokens: ex.response.subarray(0, R - 1), positions: rest, cache, observer: queries.observer, logits: 'none' });
      cache.truncateFrom(L);
    }
    const trace = {
      layers: cfg.numLayers,
      heads: cfg.numHeads,
      kvHeads: cfg.numKvHeads,
      headDim: cfg.headDim,
      length: L,
      keys,
      queries: Array.from({ length: R }, (_, i) => queries.take(L - 1 + i)!),
    };
    const mass = attentionMass(trace);
    for (const p of presses) {
      const plan = await p.press.compress(run);
      const s = sums.get(key(p.label, p.budget)) ?? { hit: 0, recall: 0, n: 0 };
      s.hit += oracleHitRate(mass, plan);
      s.recall += attentionRecall(mass, plan);
      s.n++;
      sums.set(key(p.label, p.budget), s);
    }
  }
  const out: FidelityCell[] = [];
  for (const b of budgets) {
    for (const m of methods) {
      const s = sums.get(key(m.label, b));
      out.push({
        label: m.label,
        budget: b,
        hitRate: s ? (100 * s.hit) / s.n : NaN,
        recall: s ? (100 * s.recall) / s.n : NaN,
        n: s?.n ?? 0,
      });
    }
  }
  return out;
}
