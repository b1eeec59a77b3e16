import { PyramidAllocator } from '../budgets/pyramid.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { snapkvScorer } from './snapkv.js';

export const pyramidkv: MethodDef = {
  name: 'pyramidkv',
  summary: 'PyramidKV: SnapKV scores, layer budgets falling linearly with depth',
  options: ['window', 'kernel', 'pool', 'gqa'],
  needsBudget: true,
  make: (o, b) => new ScorePress('pyramidkv', snapkvScorer(o), new PyramidAllocator(), b),
};
