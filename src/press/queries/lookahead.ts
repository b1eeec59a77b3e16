import { KvevictError } from '../../errors.js';
import { assert } from '../../errors.js';
import type { LayerView } from '../../model/types.js';
import { selectCache } from '../select-cache.js';
import type { CaptureRequest, PrefillRun, Press, QueryBlock, QuerySource } from '../types.js';

/** Index of the largest logit; ties go to the lowest id (as greedy decoding). */
function argmax(logits: Float32Array): number {
  let best = 0;
  let value = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > value) {
      value = logits[i];
      best = i;
    }
  }
  return best;
}

/** The pseudo tokens a lookahead decoded (for tests and inspection; never shown as output). */
export interface LookaheadTrace {
  tokens: number[];
  positions: number[];
}

/**
 * LAQ's lookahead queries: compress a temporary copy of the prompt cache with a cheap stage-1 press, greedily
 * decode up to `steps` pseudo tokens on it from the prefill's argmax token at positions L, L+1, ..., and
 * return each step's per-layer queries. The copy is dropped afterwards, pseudo entries with it; the prompt
 * cache is never touched. Decoding stops early at an end-of-sequence token: one chosen during the lookahead
 * is not fed; when the prefill's argmax itself is one, it is fed alone (there is always at least one query).
 */
export class LookaheadQueries implements QuerySource {
  readonly name = 'lookahead';
  /** what the last call decoded */
  lastTrace: LookaheadTrace | null = null;

  constructor(
    readonly steps: number,
    readonly stage1: Press,
  ) {
    assert(Number.isInteger(steps) && steps >= 1, 'lookahead steps >= 1');
  }

  capture(promptLength: number): CaptureRequest {
    return this.stage1.capture(promptLength);
  }

  async queries(run: PrefillRun): Promise<QueryBlock[]> {
    const { numLayers: NL, numHeads: H, headDim: d } = run.model.config;
    const rowSize = H * d;
    const plan = await this.stage1.compress(run);
    const temp = selectCache(run.cache, plan, this.steps);
    const recorded = Array.from({ length: NL }, () => new Float32Array(this.steps * rowSize));
    const positions = new Int32Array(this.steps);
    const eos = new Set(run.eosTokenIds);
    const next = run.startPosition + run.promptLength;
    if (next + this.steps > run.model.config.maxPositions) {
      throw new KvevictError(
        `lookahead ${this.steps}: the prompt (${run.promptLength} tokens) and the lookahead pass max_position_embeddings ${run.model.config.maxPositions}`,
      );
    }
    const trace: LookaheadTrace = { tokens: [], positions: [] };
    let token = argmax(run.lastLogits);
    let count = 0;
    const tok = new Int32Array(1);
    const pos = new Int32Array(1);
    for (let i = 0; i < this.steps; i++) {
      tok[0] = token;
      pos[0] = next + i;
      const row = i;
      const observer = (view: LayerView): void => {
        recorded[view.layer].set(view.queries.subarray(0, rowSize), row * rowSize);
      };
      const last = i === this.steps - 1;
      const logits = run.model.forward({ tokens: tok, positions: pos, cache: temp, observer, logits: last ? 'none' : 'last' });
      positions[i] = next + i;
      trace.tokens.push(token);
      trace.positions.push(next + i);
      count++;
      if (last || eos.has(token)) break;
      token = argmax(logits);
      if (eos.has(token)) break;
    }
    this.lastTrace = trace;
    return recorded.map((q) => ({ queries: q.subarray(0, count * rowSize), positions: positions.subarray(0, count), causal: false }));
  }
}
