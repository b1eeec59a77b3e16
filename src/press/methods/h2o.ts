import { gqa, window } from '../common-options.js';
import { defineMethod } from '../method.js';
import { ColumnSumScorer } from '../scorers/column-sums.js';

export const h2o = defineMethod({
  name: 'h2o',
  summary: 'H2O (one-shot): attention summed over all prompt queries, plus the recent `window`',
  options: { window, gqa },
  scorer: (o) => new ColumnSumScorer(o.window, o.gqa),
});
