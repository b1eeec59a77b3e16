import { KvevictError } from '../errors.js';
import { Rng } from '../util/rng.js';

/** Picks the next token from a row of logits. */
export type Sampler = (logits: Float32Array) => number;

export interface SamplingOptions {
  /** 0 means greedy */
  temperature: number;
  /** keep only the k most likely tokens (0 = off) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1 = off) */
  topP?: number;
  seed?: number;
}

export interface TopEntry {
  id: number;
  logprob: number;
}

/** The index of the largest logit; ties go to the lowest id. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

export const greedy: Sampler = argmax;

/** Check sampling options, naming the option at fault. */
export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) throw new KvevictError(`--temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0))
    throw new KvevictError(`--top-k must be an integer >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new KvevictError(`--top-p must be in (0, 1], got ${o.topP}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new KvevictError(`--seed must be an integer, got ${o.seed}`);
}

/**
 * The candidates a sampler draws from, as Hugging Face applies them: temperature, then top-k, then top-p.
 * Returns ids ordered by falling probability (ties: lower id first) and their unnormalised weights.
 */
export function samplingSupport(logits: Float32Array, o: SamplingOptions): { ids: number[]; weights: number[] } {
  const t = o.temperature;
  const vocab = logits.length;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[i] > max) max = logits[i];
  const weight = (i: number): number => Math.exp((logits[i] - max) / t);
  const topK = o.topK && o.topK > 0 && o.topK < vocab ? o.topK : 0;
  const topP = o.topP !== undefined && o.topP < 1 ? o.topP : 1;
  const byProbability = (a: number, b: number): number => logits[b] - logits[a] || a - b;

  let ids: number[];
  let total = 0;
  if (topK > 0) {
    ids = topKIds(logits, topK);
    for (const i of ids) total += weight(i);
  } else if (topP < 1) {
    // A token with probability below (1 - p) / (vocab - 1) cannot be in the nucleus unless it is the argmax
    // (the tokens at or after it in rank hold less than 1 - p), so only the rest needs sorting.
    for (let i = 0; i < vocab; i++) total += weight(i);
    const cutoff = ((1 - topP) / (vocab - 1)) * total;
    const best = argmax(logits);
    ids = [];
    for (let i = 0; i < vocab; i++) if (i === best || weight(i) >= cutoff) ids.push(i);
    ids.sort(byProbability);
  } else {
    ids = Array.from({ length: vocab }, (_, i) => i);
  }
  let weights = ids.map(weight);
  if (topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < ids.length) {
      cum += weights[keep++];
      if (cum >= topP * total) break;
    }
    ids = ids.slice(0, keep);
    weights = weights.slice(0, keep);
  }
  return { ids, weights };
}

/** The k largest logits' ids, by falling logit (ties: lower id first). */
function topKIds(logits: Float32Array, k: number): number[] {
  // a small sorted list beats sorting the whole vocabulary when k is small
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (ids.length === k && !(v > logits[ids[k - 1]])) continue;
    let j = ids.length < k ? ids.length : k - 1;
    if (ids.length < k) ids.push(i);
    while (j > 0 && logits[ids[j - 1]] < v) {
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = i;
  }
  return ids;
}

/** A sampler: greedy at temperature 0, otherwise a seeded draw from the temperature/top-k/top-p support. */
export function makeSampler(o: SamplingOptions): Sampler {
  validateSampling(o);
  if (o.temperature === 0) return greedy;
  const rng = new Rng(o.seed ?? 0);
  return (logits) => {
    const { ids, weights } = samplingSupport(logits, o);
    let total = 0;
    for (const w of weights) total += w;
    let r = rng.next() * total;
    for (let i = 0; i < ids.length; i++) {
      r -= weights[i];
      if (r < 0) return ids[i];
    }
    return ids[ids.length - 1];
  };
}

/** The `k` most likely tokens with their log-softmax values (ties: lower id first). */
export function topLogprobs(logits: Float32Array, k = 5): TopEntry[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  return topKIds(logits, Math.min(k, logits.length)).map((id) => ({ id, logprob: logits[id] - logZ }));
}
