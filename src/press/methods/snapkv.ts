import { pooled } from '../common-options.js';
import { defineMethod } from '../method.js';
import type { OptionValues } from '../option-spec.js';
import { WindowQueries } from '../queries/window.js';
import { AttentionScorer } from '../scorers/attention.js';

/** SnapKV's scorer: the last `window` prompt queries, causal inside the window, pooled, reduced over GQA. */
export function snapkvScorer(o: OptionValues<typeof pooled>): AttentionScorer {
  return new AttentionScorer({
    name: 'snapkv',
    sources: [new WindowQueries(o.window)],
    window: o.window,
    kernel: o.kernel,
    pool: o.pool,
    gqa: o.gqa,
  });
}

export const snapkv = defineMethod({
  name: 'snapkv',
  summary: 'SnapKV: attention of the last `window` prompt queries, pooled',
  options: pooled,
  scorer: snapkvScorer,
});
