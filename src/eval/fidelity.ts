import type { KvCache } from '../cache/kv-cache.js';
import type { Observer } from '../model/types.js';

/**
 * Fidelity of a compressed cache to the full one, without a benchmark (methods.md, "Measuring fidelity"):
 * - oracle hit rate: overlap of each KV head's kept set with the oracle's top set, the oracle scoring
 *   prompt keys with the queries of the tokens the model really decodes with the full cache;
 * - attention recall: the share of those real queries' attention (softmax over prompt keys) that falls
 *   on kept entries, averaged over steps, layers and query heads;
 * - output agreement: top-1 agreement and KL(full || compressed) of next-token distributions when the
 *   compressed run is fed the full run's tokens.
 */

/** [layer][kvHead] -> sorted kept positions */
export type KeptPositions = readonly (readonly Int32Array[])[];

/** What the full-cache run shows: the compressible prompt keys and the real answer queries. */
export interface FidelityTrace {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** compressible prompt positions are 0 .. length-1 */
  length: number;
  /** [layer][kvHead] keys after RoPE, [length, headDim] */
  keys: Float32Array[][];
  /** per answer token: [layer] the query (after RoPE) of the row that chose it, [heads, headDim] */
  queries: Float32Array[][];
}

/** Attention of the real queries on each prompt key, summed over steps and each KV head's group. */
export interface AttentionMass {
  length: number;
  steps: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** [layer][kvHead][j]: sum over steps and the group's query heads of the softmax weight on key j */
  mass: Float64Array[][];
}

export function attentionMass(t: FidelityTrace): AttentionMass {
  const { layers, heads, kvHeads, headDim: d, length: L } = t;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const mass: Float64Array[][] = [];
  const logits = new Float64Array(L);
  for (let l = 0; l < layers; l++) {
    const perHead: Float64Array[] = [];
    for (let kvh = 0; kvh < kvHeads; kvh++) {
      const acc = new Float64Array(L);
      const keys = t.keys[l][kvh];
      for (const step of t.queries) {
        const q = step[l];
        for (let g = 0; g < group; g++) {
          const qo = (kvh * group + g) * d;
          let max = -Infinity;
          for (let j = 0; j < L; j++) {
            let s = 0;
            const ko = j * d;
            for (let i = 0; i < d; i++) s += q[qo + i] * keys[ko + i];
            s *= scale;
            logits[j] = s;
            if (s > max) max = s;
          }
          let sum = 0;
          for (let j = 0; j < L; j++) {
            logits[j] = Math.exp(logits[j] - max);
            sum += logits[j];
          }
          for (let j = 0; j < L; j++) acc[j] += logits[j] / sum;
        }
      }
      perHead.push(acc);
    }
    mass.push(perHead);
  }
  return { length: L, steps: t.queries.length, layers, heads, kvHeads, mass };
}

/** Kept positions inside the compressible prompt. */
function keptIn(kept: Int32Array, length: number): Int32Array {
  let n = 0;
  while (n < kept.length && kept[n] < length) n++;
  return kept.subarray(0, n);
}

/** Attention recall, 0..1 (NaN when there were no answer steps). */
export function attentionRecall(m: AttentionMass, plan: KeptPositions): number {
  if (m.steps === 0 || m.length === 0) return NaN;
  let total = 0;
  for (let l = 0; l < m.layers; l++) {
    for (let h = 0; h < m.kvHeads; h++) {
      const acc = m.mass[l][h];
      for (const j of keptIn(plan[l][h], m.length)) total += acc[j];
    }
  }
  return total / (m.steps * m.layers * m.heads);
}

/** The k highest scores' positions (ties toward the later position), sorted ascending. */
export function oracleTopK(scores: Float64Array, k: number): Int32Array {
  return bestFirst(scores).slice(0, Math.max(0, k)).sort();
}

function bestFirst(scores: Float64Array): Int32Array {
  const idx = Array.from({ length: scores.length }, (_, j) => j);
  idx.sort((a, b) => scores[b] - scores[a] || b - a);
  return Int32Array.from(idx);
}

/** Positions best first (ties toward the later), per mass row: every budget's top-k is a prefix of it. */
const orders = new WeakMap<Float64Array, Int32Array>();
function oracleOrder(scores: Float64Array): Int32Array {
  let order = orders.get(scores);
  if (!order) orders.set(scores, (order = bestFirst(scores)));
  return order;
}

/**
 * Oracle hit rate, 0..1: per KV head, the share of the oracle's top-k positions that the method kept,
 * k being the size of that head's kept set (the budget for uniform methods; a head that keeps the
 * whole prompt scores 1), averaged over layers and KV heads. Each head's ranking is kept with its mass (which
 * must not change afterwards), so the rows of one case rank it once.
 */
export function oracleHitRate(m: AttentionMass, plan: KeptPositions): number {
  if (m.steps === 0 || m.length === 0) return NaN;
  let sum = 0;
  for (let l = 0; l < m.layers; l++) {
    for (let h = 0; h < m.kvHeads; h++) {
      const kept = keptIn(plan[l][h], m.length);
      if (kept.length >= m.length) {
        sum += 1;
        continue;
      }
      if (kept.length === 0) continue;
      // the mass is never modified after attentionMass(), so its order is computed once for every row of a case
      const top = oracleOrder(m.mass[l][h]).slice(0, kept.length).sort();
      let hits = 0;
      let i = 0;
      for (const j of kept) {
        while (i < top.length && top[i] < j) i++;
        if (i < top.length && top[i] === j) hits++;
      }
      sum += hits / kept.length;
    }
  }
  return sum / (m.layers * m.kvHeads);
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - lse;
  return out;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Output agreement over the steps both runs have: top-1 agreement (0..1) and the mean
 * KL(full || compressed) in nats of the next-token distributions.
 */
export function outputAgreement(full: readonly Float32Array[], compressed: readonly Float32Array[]): { top1: number; kl: number } {
  const n = Math.min(full.length, compressed.length);
  if (n === 0) return { top1: NaN, kl: NaN };
  let agree = 0;
  let kl = 0;
  for (let t = 0; t < n; t++) {
    if (argmax(full[t]) === argmax(compressed[t])) agree++;
    const p = logSoftmax(full[t]);
    const q = logSoftmax(compressed[t]);
    let s = 0;
    for (let i = 0; i < p.length; i++) {
      const pi = Math.exp(p[i]);
      if (pi > 0) s += pi * (p[i] - q[i]);
    }
    kl += s;
  }
  return { top1: agree / n, kl: kl / n };
}

/** Copies of the cache's keys at positions below `length`, per layer and KV head. */
export function promptKeys(cache: KvCache, length: number): Float32Array[][] {
  return cache.layers.map((heads) =>
    heads.map((h) => {
      let n = 0;
      while (n < h.length && h.positions[n] < length) n++;
      return h.keyRows(0, n).slice();
    }),
  );
}

/**
 * An observer that copies, for each row whose position is in `wanted`, the queries of every layer.
 * `take(pos)` returns [layer] -> [heads * headDim].
 */
export function queryRecorder(layers: number): { observer: Observer; wanted: Set<number>; take(pos: number): Float32Array[] | undefined } {
  const wanted = new Set<number>();
  const store = new Map<number, Float32Array[]>();
  const observer: Observer = (v) => {
    const rows = v.positions.length;
    if (rows === 0) return;
    const width = v.queries.length / rows;
    for (let r = 0; r < rows; r++) {
      const p = v.positions[r];
      if (!wanted.has(p)) continue;
      let per = store.get(p);
      if (!per) {
        per = new Array<Float32Array>(layers);
        store.set(p, per);
      }
      per[v.layer] = v.queries.slice(r * width, (r + 1) * width);
    }
  };
  return { observer, wanted, take: (pos) => store.get(pos) };
}
