import { CacheOnlyScorer } from './cache-only.js';

/** StreamingLLM: the first `sinks` positions (attention sinks) score highest, then the most recent ones. */
export const streamingScorer = (sinks: number): CacheOnlyScorer =>
  new CacheOnlyScorer('streaming', () => (head) => {
    const s = new Float64Array(head.length);
    for (let j = 0; j < head.length; j++) s[j] = j < sinks ? Infinity : j;
    return s;
  });
