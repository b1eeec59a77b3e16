import { defineMethod } from '../method.js';
import { knormScorer } from '../scorers/knorm.js';

export const knorm = defineMethod({
  name: 'knorm',
  summary: 'keys with the smallest L2 norm',
  options: {},
  scorer: () => knormScorer(),
});
