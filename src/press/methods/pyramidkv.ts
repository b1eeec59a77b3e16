import { PyramidAllocator } from '../budgets/pyramid.js';
import { pooled } from '../common-options.js';
import { defineMethod } from '../method.js';
import { snapkvScorer } from './snapkv.js';

export const pyramidkv = defineMethod({
  name: 'pyramidkv',
  summary: 'PyramidKV: SnapKV scores, layer budgets falling linearly with depth',
  options: pooled,
  scorer: snapkvScorer,
  allocator: () => new PyramidAllocator(),
});
