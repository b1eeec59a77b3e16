import { defineMethod } from '../method.js';
import { keepAllPlan } from '../select-cache.js';
import type { KeepPlan, PrefillRun, Press } from '../types.js';

/** No eviction: the reference every method is measured against. */
export class FullPress implements Press {
  readonly name = 'full';

  capture(): Record<string, never> {
    return {};
  }

  compress(run: PrefillRun): KeepPlan {
    return keepAllPlan(run.cache);
  }
}

export const full = defineMethod({
  name: 'full',
  summary: 'no eviction',
  options: {},
  needsBudget: false,
  make: () => new FullPress(),
});
