import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { KnormScorer } from '../scorers/knorm.js';

export const knorm: MethodDef = {
  name: 'knorm',
  summary: 'keys with the smallest L2 norm',
  options: [],
  needsBudget: true,
  scorer: () => new KnormScorer(),
  make: (_o, b) => new ScorePress('knorm', new KnormScorer(), new UniformAllocator(), b),
};
