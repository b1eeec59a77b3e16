import { defineMethod } from '../method.js';
import { intOption } from '../option-spec.js';
import { randomScorer } from '../scorers/random.js';

export const random = defineMethod({
  name: 'random',
  summary: 'a seeded uniform choice (the floor every method must beat)',
  options: { seed: intOption({ default: 0, help: 'seed of the choice' }) },
  scorer: (o) => randomScorer(o.seed),
});
