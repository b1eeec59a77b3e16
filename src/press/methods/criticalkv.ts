import { defineWrapper } from '../method.js';
import { numberOption } from '../option-spec.js';
import { CriticalScorer } from '../scorers/critical.js';

/** CriticalKV around another method's scorer: half the slots by its scores, the rest weighted by ||W_o v||_1. */
export const criticalkv = defineWrapper({
  name: 'criticalkv',
  summary: 'CriticalKV: wraps `scorer`; half the slots by its scores, the rest by them times the output-projected value norm',
  options: {
    firstStage: numberOption({ default: 0.5, min: 0, max: 1, help: 'share of the slots chosen by the wrapped scores alone' }),
    epsilon: numberOption({ default: 1e-4, min: 0, max: 1, help: 'added to the scores before the value-norm weighting' }),
  },
  defaultScorer: 'snapkv',
  wrap: (inner, o) => ({ scorer: new CriticalScorer(inner.scorer, o.epsilon, o.firstStage), allocator: inner.allocator }),
});
