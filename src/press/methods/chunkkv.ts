import { ChunkAllocator } from '../budgets/chunks.js';
import { defineWrapper } from '../method.js';
import { intOption } from '../option-spec.js';

/** ChunkKV around another method's scorer: whole chunks of consecutive tokens, ranked by their mean score. */
export const chunkkv = defineWrapper({
  name: 'chunkkv',
  summary: 'ChunkKV: wraps `scorer`, keeping whole chunks of `chunk` consecutive tokens ranked by their mean score',
  options: { chunk: intOption({ default: 20, min: 1, help: 'tokens per chunk' }) },
  defaultScorer: 'snapkv',
  wrap: (inner, o) => ({ scorer: inner.scorer, allocator: new ChunkAllocator(o.chunk) }),
});
