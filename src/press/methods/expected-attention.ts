import { gqa, sinks } from '../common-options.js';
import { defineMethod } from '../method.js';
import { ExpectedAttentionScorer } from '../scorers/expected-attention.js';

export const expectedAttention = defineMethod({
  name: 'expected-attention',
  summary: 'Expected Attention (kvpress): attention expected from query statistics, times value norms',
  options: { sinks, gqa },
  scorer: (o) => new ExpectedAttentionScorer(o.sinks, o.gqa),
});
