import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { StreamingScorer } from '../scorers/streaming.js';

export const streaming: MethodDef = {
  name: 'streaming',
  summary: 'StreamingLLM: the first --sinks positions and the most recent ones',
  options: ['sinks'],
  needsBudget: true,
  scorer: (o) => new StreamingScorer(o.sinks),
  make: (o, b) => new ScorePress('streaming', new StreamingScorer(o.sinks), new UniformAllocator(), b),
};
