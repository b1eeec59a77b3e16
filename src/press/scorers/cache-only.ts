import type { HeadCache } from '../../cache/kv-cache.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/**
 * A scorer that needs nothing recorded during the prefill and no window: each KV head is scored from its own
 * cache entries (keys, positions). `perRun` is called once per compression and returns the per-head rule
 * (a seeded scorer starts its generator there).
 */
export class CacheOnlyScorer implements Scorer {
  readonly window = 0;

  constructor(
    readonly name: string,
    private readonly perRun: (run: PrefillRun) => (head: HeadCache, headDim: number) => Float64Array,
  ) {}

  capture(): CaptureRequest {
    return {};
  }

  score(run: PrefillRun): HeadScores {
    const scoreHead = this.perRun(run);
    return run.cache.layers.map((layer) => layer.map((head) => scoreHead(head, run.cache.headDim)));
  }
}
