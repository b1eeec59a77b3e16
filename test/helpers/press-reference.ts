/**
 * Brute-force versions of the eviction methods' definitions (methods.md), in float64 with plain loops and
 * plain sorts, and a harness that prefills a small random model while recording every query, key and value.
 */
import assert from 'node:assert/strict';
import { KvCache, type KvDtype } from '../../src/cache/kv-cache.js';
import { halfUlp, roundToHalf, type ReferenceInput } from '../reference/llama-f64.js';
import type { ModelConfig } from '../../src/model/config.js';
import { LlamaModel } from '../../src/model/llama.js';
import type { LayerView } from '../../src/model/types.js';
import { prefill } from '../../src/generate/pipeline.js';
import type { KeepPlan, PrefillRun, Press } from '../../src/press/types.js';
import { randomWeights, tinyConfig, type RawConfig } from './random-model.js';

/** Every row's queries [H*d], keys and values [Hkv*d] per layer, as float64. */
export interface Recorded {
  q: Float64Array[][];
  k: Float64Array[][];
  v: Float64Array[][];
}

export interface Harness {
  cfg: ModelConfig;
  model: LlamaModel;
}

/** A tiny llama with random weights; `overrides` are config.json keys (e.g. num_key_value_heads). */
export function tinyModel(overrides: RawConfig = {}, seed = 3, scale = 0.12): Harness {
  const cfg = tinyConfig('llama', overrides);
  return { cfg, model: new LlamaModel(cfg, randomWeights(cfg, seed, scale)) };
}

/** Random prompt ids in [3, 256) from a small LCG (ids 256.. are specials). */
export function promptTokens(n: number, seed = 1): Int32Array {
  const out = new Int32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = 3 + (x % 253);
  }
  return out;
}

/** Prefill `tokens` with the full cache, recording what `press` asks for and every q/k/v; returns the run. */
export function prefillRun(h: Harness, tokens: Int32Array, press: Press): { run: PrefillRun; rec: Recorded } {
  const { cfg, model } = h;
  const rec: Recorded = { q: [], k: [], v: [] };
  for (let l = 0; l < cfg.numLayers; l++) {
    rec.q.push([]);
    rec.k.push([]);
    rec.v.push([]);
  }
  const qs = cfg.numHeads * cfg.headDim,
    ks = cfg.numKvHeads * cfg.headDim;
  const observer = (view: LayerView): void => {
    for (let r = 0; r < view.positions.length; r++) {
      rec.q[view.layer].push(Float64Array.from(view.queries.subarray(r * qs, (r + 1) * qs)));
      rec.k[view.layer].push(Float64Array.from(view.keys.subarray(r * ks, (r + 1) * ks)));
      rec.v[view.layer].push(Float64Array.from(view.values.subarray(r * ks, (r + 1) * ks)));
    }
  };
  // an f32 cache: the brute-force definitions read the observer's float32 keys, as the press must
  const run = prefill(model, tokens, { record: [press.capture(tokens.length)], observer, chunk: 16, kvDtype: 'f32' });
  return { run, rec };
}

/** Indices of the k best scores by (score desc, index desc), returned ascending. */
export function bfTopK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b] - scores[a] || b - a);
  return idx.slice(0, Math.max(0, k)).sort((a, b) => a - b);
}

/** torch-style 1-D pooling, stride 1, padding floor(k/2), over the first n entries; avg counts padding. */
export function bfPool(x: ArrayLike<number>, n: number, kernel: number, kind: 'max' | 'avg'): number[] {
  const out: number[] = [];
  const left = Math.floor(kernel / 2);
  for (let j = 0; j < n; j++) {
    const vals: number[] = [];
    for (let t = 0; t < kernel; t++) {
      const i = j - left + t;
      if (i >= 0 && i < n) vals.push(x[i]);
      else if (kind === 'avg') vals.push(0);
    }
    out.push(kind === 'max' ? Math.max(...vals) : vals.reduce((a, b) => a + b, 0) / kernel);
  }
  return out;
}

export function bfReduce(perHead: number[][], kind: 'mean' | 'max'): number[] {
  return perHead[0].map((_, j) => {
    const vals = perHead.map((a) => a[j]);
    return kind === 'max' ? Math.max(...vals) : vals.reduce((a, b) => a + b, 0) / vals.length;
  });
}

/** A query row: the full [H*d] query and the last key position it may see. */
export interface BfQuery {
  q: ArrayLike<number>;
  limit: number;
}

/** s[j] = sum over rows of softmax_j(q . k_j / sqrt(d)) over j <= limit, for one query head. */
export function bfAttentionMass(rows: BfQuery[], keys: ArrayLike<number>[], qHead: number, kvHead: number, d: number): number[] {
  const L = keys.length;
  const s = new Array<number>(L).fill(0);
  for (const row of rows) {
    const vis = Math.min(L - 1, row.limit);
    const logits: number[] = [];
    for (let j = 0; j <= vis; j++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += row.q[qHead * d + i] * keys[j][kvHead * d + i];
      logits.push(dot / Math.sqrt(d));
    }
    const m = Math.max(...logits);
    const e = logits.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j <= vis; j++) s[j] += e[j] / z;
  }
  return s;
}

export interface BfAttentionOptions {
  window: number;
  kernel: number;
  pool: 'max' | 'avg';
  gqa: 'mean' | 'max' | 'layer';
}

/** The attention-based scores of methods.md for one layer: per KV head, over the first L - window keys. */
export function bfAttentionScores(cfg: ModelConfig, rows: BfQuery[], keys: ArrayLike<number>[], o: BfAttentionOptions): number[][] {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
  const G = H / Hkv;
  const L = keys.length;
  const pooled: number[][] = [];
  for (let h = 0; h < H; h++) pooled.push(bfPool(bfAttentionMass(rows, keys, h, Math.floor(h / G), d), L - o.window, o.kernel, o.pool));
  const out: number[][] = [];
  for (let kv = 0; kv < Hkv; kv++) {
    if (o.gqa === 'layer') out.push(bfReduce(pooled, 'mean'));
    else out.push(bfReduce(pooled.slice(kv * G, (kv + 1) * G), o.gqa));
  }
  return out;
}

/** Kept positions: the chosen candidates plus the window. */
export function withWindow(chosen: number[], L: number, window: number): number[] {
  const out = [...chosen];
  for (let j = L - window; j < L; j++) out.push(j);
  return out;
}

/**
 * The plan must equal the brute force's, except for swaps between entries whose brute-force scores are
 * within `tol` (float32 against float64 near-ties). `scores[l][h]` are the brute-force candidate scores.
 */
export function assertPlanMatches(actual: KeepPlan, expected: number[][][], scores: number[][][] | null, what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: layers`);
  for (let l = 0; l < expected.length; l++) {
    for (let h = 0; h < expected[l].length; h++) {
      const a = Array.from(actual[l][h]);
      const e = expected[l][h];
      for (let i = 1; i < a.length; i++) assert.ok(a[i] > a[i - 1], `${what}: layer ${l} head ${h} sorted and unique`);
      assert.equal(a.length, e.length, `${what}: layer ${l} head ${h} keeps ${e.length}`);
      const onlyA = a.filter((x) => !e.includes(x));
      const onlyE = e.filter((x) => !a.includes(x));
      if (onlyA.length === 0) continue;
      assert.ok(scores, `${what}: layer ${l} head ${h}: kept ${JSON.stringify(a)} expected ${JSON.stringify(e)}`);
      const s = scores[l][h];
      const worstKept = Math.min(...onlyA.map((j) => s[j]));
      const bestDropped = Math.max(...onlyE.map((j) => s[j]));
      assert.ok(
        Math.abs(worstKept - bestDropped) <= tol * Math.max(1, Math.abs(bestDropped)),
        `${what}: layer ${l} head ${h}: kept ${JSON.stringify(onlyA)} instead of ${JSON.stringify(onlyE)} (scores ${worstKept} vs ${bestDropped})`,
      );
    }
  }
}

/** A cache filled directly from per-layer [L][Hkv*d] keys and values at positions 0..L-1. */
export function cacheFrom(cfg: ModelConfig, keys: ArrayLike<number>[][], values: ArrayLike<number>[][]): KvCache {
  const { numLayers: NL, numKvHeads: Hkv, headDim: d } = cfg;
  const cache = new KvCache(NL, Hkv, d);
  for (let l = 0; l < NL; l++) {
    const L = keys[l].length;
    const k = new Float32Array(L * Hkv * d),
      v = new Float32Array(L * Hkv * d);
    for (let r = 0; r < L; r++) {
      k.set(Array.from(keys[l][r]), r * Hkv * d);
      v.set(Array.from(values[l][r]), r * Hkv * d);
    }
    const pos = Int32Array.from({ length: L }, (_, i) => i);
    for (let h = 0; h < Hkv; h++) cache.head(l, h).append(L, k, v, Hkv * d, h * d, pos);
  }
  return cache;
}

/** Bytes a cache holds when every head of every layer keeps `entries` entries. */
export function bytesFor(cfg: ModelConfig, entries: number, kvDtype: KvDtype = 'f32'): number {
  return cfg.numLayers * cfg.numKvHeads * entries * (2 * cfg.headDim * (kvDtype === 'f16' ? 2 : 4) + 4);
}

/**
 * The float64 reference's storeKv over an engine's f16 cache: each row's keys and values become the halves the
 * engine stored at that layer, position and KV head (in the first of `caches` holding it; a row none holds, such
 * as an evicted one, is rounded to the nearest halves), after checking that every stored half is the nearest half
 * of the reference's own value (its neighbour at a near-tie, where the engine's float32 value fell on the other side).
 * The reference then reads exactly what the engine's attention read, so the logits compare at float32 precision.
 */
export function storedHalves(caches: KvCache[]): NonNullable<ReferenceInput['storeKv']> {
  const { numKvHeads: Hkv, headDim: d } = caches[0];
  return (l, p, kind, row) => {
    for (let h = 0; h < Hkv; h++) {
      let stored: Float32Array | null = null;
      for (const c of caches) {
        const head = c.head(l, h);
        const j = head.positions.subarray(0, head.length).indexOf(p);
        if (j >= 0) {
          stored = kind === 'k' ? head.keyRows(j, 1) : head.valueRows(j, 1);
          break;
        }
      }
      // the engine's float32 value is the reference's within float32 noise of the row's scale
      let scale = 0;
      for (let i = 0; i < d; i++) scale = Math.max(scale, Math.abs(row[h * d + i]));
      for (let i = 0; i < d; i++) {
        const x = row[h * d + i];
        const s = stored ? stored[i] : roundToHalf(x);
        assert.ok(
          roundToHalf(s) === s && Math.abs(s - x) <= 0.5 * halfUlp(x) + 1e-5 * scale,
          `layer ${l} position ${p} head ${h} ${kind}[${i}]: stored ${s} (${stored ? 'engine' : 'rounded'}), the reference's value ${x}`,
        );
        row[h * d + i] = s;
      }
    }
  };
}
