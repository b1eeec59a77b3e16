import { defineMethod } from '../method.js';
import { keydiffScorer } from '../scorers/keydiff.js';

export const keydiff = defineMethod({
  name: 'keydiff',
  summary: 'KeyDiff: the keys least similar to the mean key direction',
  options: {},
  scorer: () => keydiffScorer(),
});
