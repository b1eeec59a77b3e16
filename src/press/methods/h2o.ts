import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import { ScorePress } from '../score-press.js';
import { ColumnSumScorer } from '../scorers/column-sums.js';

export const h2o: MethodDef = {
  name: 'h2o',
  summary: 'H2O (one-shot): attention summed over all prompt queries, plus the recent --window',
  options: ['window', 'gqa'],
  needsBudget: true,
  scorer: (o) => new ColumnSumScorer(o.window, o.gqa),
  make: (o, b) => new ScorePress('h2o', new ColumnSumScorer(o.window, o.gqa), new UniformAllocator(), b),
};
