import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { RandomScorer } from '../scorers/random.js';

export const random: MethodDef = {
  name: 'random',
  summary: 'a seeded uniform choice (the floor every method must beat)',
  options: ['seed'],
  needsBudget: true,
  scorer: (o) => new RandomScorer(o.seed),
  make: (o, b) => new ScorePress('random', new RandomScorer(o.seed), new UniformAllocator(), b),
};
