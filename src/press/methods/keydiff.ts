import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { KeyDiffScorer } from '../scorers/keydiff.js';

export const keydiff: MethodDef = {
  name: 'keydiff',
  summary: 'KeyDiff: the keys least similar to the mean key direction',
  options: [],
  needsBudget: true,
  scorer: () => new KeyDiffScorer(),
  make: (_o, b) => new ScorePress('keydiff', new KeyDiffScorer(), new UniformAllocator(), b),
};
