import { SharedAllocator } from '../budgets/shared.js';
import { sinks } from '../common-options.js';
import { defineMethod } from '../method.js';
import { booleanOption, intOption } from '../option-spec.js';
import { ReconstructionScorer } from '../scorers/reconstruction.js';

export const kvzip = defineMethod({
  name: 'kvzip',
  summary: 'KVzip: scores from the attention of the context fed again after a repeat instruction, chunk by chunk',
  options: {
    chunk: intOption({ default: 2048, min: 1, help: 'context tokens per reconstruction pass' }),
    sinks,
    layerwise: booleanOption({ help: "each layer keeps its share (default: the whole model's slots shared among every head)" }),
  },
  scorer: (o) => new ReconstructionScorer(o.chunk, o.sinks),
  allocator: (o) => new SharedAllocator(o.layerwise ? 'layer' : 'model'),
});
