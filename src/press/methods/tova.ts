import { defineMethod } from '../method.js';
import { WindowQueries } from '../queries/window.js';
import { AttentionScorer } from '../scorers/attention.js';

/**
 * TOVA (one-shot): the last prompt token's attention, averaged over every query head of the layer, so all KV
 * heads of a layer keep the same set. The last token itself is kept (a window of one), no pooling.
 */
export const tova = defineMethod({
  name: 'tova',
  summary: "TOVA (one-shot): the last token's attention averaged over the layer's heads",
  options: {},
  scorer: () => new AttentionScorer({ name: 'tova', sources: [new WindowQueries(1)], window: 1, kernel: 1, pool: 'max', gqa: 'layer' }),
});
