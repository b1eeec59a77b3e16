import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { ExpectedAttentionScorer } from '../scorers/expected-attention.js';

export const expectedAttention: MethodDef = {
  name: 'expected-attention',
  summary: 'Expected Attention (kvpress): attention expected from query statistics, times value norms',
  options: ['sinks', 'gqa'],
  needsBudget: true,
  scorer: (o) => new ExpectedAttentionScorer(o.sinks, o.gqa),
  make: (o, b) => new ScorePress('expected-attention', new ExpectedAttentionScorer(o.sinks, o.gqa), new UniformAllocator(), b),
};
