import { SharedAllocator } from '../budgets/shared.js';
import { window } from '../common-options.js';
import { defineMethod } from '../method.js';
import { intOption, numberOption } from '../option-spec.js';
import { DefensiveScorer } from '../scorers/defensive.js';

const options = {
  window,
  kernel: intOption({ default: 5, min: 1, help: 'average-pooling kernel, per window row' }),
  mass: numberOption({ default: 0.9, min: 0, max: 1, help: 'share of the mean attention whose entries are kept first' }),
};

export const defensivekv = defineMethod({
  name: 'defensivekv',
  summary:
    "DefensiveKV: the window's worst-case attention floored at its mean, value-norm weighted; each layer's slots shared among its heads",
  options,
  scorer: (o) => new DefensiveScorer(o.window, o.kernel, o.mass),
  allocator: () => new SharedAllocator('layer'),
});

export const layerDefensivekv = defineMethod({
  name: 'layer-defensivekv',
  summary: "Layer-DefensiveKV: DefensiveKV's scores, the whole model's slots shared among every head of every layer",
  options,
  scorer: (o) => new DefensiveScorer(o.window, o.kernel, o.mass),
  allocator: () => new SharedAllocator('model'),
});
