import { AdaptiveAllocator } from '../budgets/adaptive.js';
import { defineWrapper } from '../method.js';
import { numberOption } from '../option-spec.js';

/** AdaKV around another method's scorer: each layer's budget shared among its heads. */
export const adakv = defineWrapper({
  name: 'adakv',
  summary: "AdaKV: wraps `scorer`, sharing each layer's budget among its heads",
  options: { alpha: numberOption({ default: 0.2, min: 0, max: 1, help: 'share of the budget each head keeps on its own' }) },
  defaultScorer: 'snapkv',
  wrap: (inner, o) => ({ scorer: inner.scorer, allocator: new AdaptiveAllocator(o.alpha) }),
});
