import type { KvCache } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import type { LlamaModel } from '../model/llama.js';
import type { Observer } from '../model/types.js';
import { greedy, topLogprobs, type Sampler, type TopEntry } from './sampling.js';

export interface DecodeStep {
  token: number;
  /** the most likely next tokens (log-softmax) when `token` was chosen: five unless asked otherwise */
  top: TopEntry[];
}

export interface DecodeResult {
  /** generated ids, the stop token included when one ended the run */
  tokens: number[];
  steps: DecodeStep[];
  /** 'stop' when a stop token was generated, 'length' when maxNewTokens or max_position_embeddings ran out */
  finish: 'stop' | 'length';
  /** with keepLogits: the logits each token was chosen from */
  logits?: Float32Array[];
  /** with feedLast: the logits after the last token was fed (they choose the next one) */
  nextLogits?: Float32Array;
}

export interface DecodeOptions {
  /** logits that choose the first new token (the prefill's last row) */
  firstLogits: Float32Array;
  /** position of the first new token (the prompt length, even after eviction) */
  nextPosition: number;
  maxNewTokens: number;
  /** default: the model's end-of-sequence ids */
  stopTokens?: readonly number[];
  /** default: greedy */
  sampler?: Sampler;
  /** sees every decode step's layers */
  observer?: Observer;
  /** how many top log-probabilities each step records (default 5; 0 skips the full-vocabulary softmax) */
  topLogprobs?: number;
  /** called after each token is chosen */
  onToken?: (token: number, step: number) => void;
  /** keep a copy of the logits each token was chosen from (DecodeResult.logits) */
  keepLogits?: boolean;
  /** feed the last token too (unless it stopped the run), so the cache holds it and nextLogits follow it */
  feedLast?: boolean;
}

/** Choose tokens one at a time, feeding each back at the next position, until a stop token or the limit. */
export function decode(model: LlamaModel, cache: KvCache, o: DecodeOptions): DecodeResult {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    throw new KvevictError(`--max-new-tokens must be an integer >= 0, got ${o.maxNewTokens}`);
  const stop = new Set(o.stopTokens ?? model.config.eosTokenIds);
  const sampler = o.sampler ?? greedy;
  const tokens: number[] = [];
  const steps: DecodeStep[] = [];
  const one = new Int32Array(1);
  const pos = new Int32Array(1);
  const topCount = o.topLogprobs ?? 5;
  const stepLogits = new Float32Array(model.config.vocabSize);
  let logits = o.firstLogits;
  let finish: DecodeResult['finish'] = 'length';
  const kept: Float32Array[] | undefined = o.keepLogits ? [] : undefined;
  for (let i = 0; i < o.maxNewTokens; i++) {
    const token = sampler(logits);
    tokens.push(token);
    // later steps' logits live in one reused buffer
    kept?.push(i === 0 ? logits : Float32Array.from(logits));
    steps.push({ token, top: topCount > 0 ? topLogprobs(logits, topCount) : [] });
    o.onToken?.(token, i);
    if (stop.has(token)) {
      finish = 'stop';
      break;
    }
    if (i + 1 === o.maxNewTokens && !o.feedLast) break; // the last token's own logits are never needed
    if (o.nextPosition + i >= model.config.maxPositions) break; // no room left for the token just chosen
    one[0] = token;
    pos[0] = o.nextPosition + i;
    logits = model.forward({ tokens: one, positions: pos, cache, observer: o.observer, logitsOut: stepLogits });
    if (i + 1 === o.maxNewTokens)
      return { tokens, steps, finish, nextLogits: Float32Array.from(logits), ...(kept ? { logits: kept } : {}) };
  }
  return kept ? { tokens, steps, finish, logits: kept } : { tokens, steps, finish };
}
