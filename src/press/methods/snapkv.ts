import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import type { ResolvedOptions } from '../options.js';
import { WindowQueries } from '../queries/window.js';
import { ScorePress } from '../score-press.js';
import { AttentionScorer } from '../scorers/attention.js';

/** SnapKV's scorer: the last `window` prompt queries, causal inside the window, pooled, reduced over GQA. */
export function snapkvScorer(o: Pick<ResolvedOptions, 'window' | 'kernel' | 'pool' | 'gqa'>): AttentionScorer {
  return new AttentionScorer({ name: 'snapkv', sources: [new WindowQueries(o.window)], window: o.window, kernel: o.kernel, pool: o.pool, gqa: o.gqa });
}

export const snapkv: MethodDef = {
  name: 'snapkv',
  summary: 'SnapKV: attention of the last --window prompt queries, pooled',
  options: ['window', 'kernel', 'pool', 'gqa'],
  needsBudget: true,
  scorer: (o) => snapkvScorer(o),
  make: (o, b) => new ScorePress('snapkv', snapkvScorer(o), new UniformAllocator(), b),
};
