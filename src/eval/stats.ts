import { Rng } from '../util/rng.js';

/** Resamples of the percentile bootstrap: enough for the 2.5% and 97.5% quantiles to move by less than 0.1 points. */
export const BOOTSTRAP_RESAMPLES = 2000;

/**
 * The 95% percentile-bootstrap interval of the mean of `xs`: resample the cases with replacement, take the
 * 2.5% and 97.5% quantiles of the resampled means. Seeded, so a table is the same every time it is made.
 * One case gives [x, x]; none gives null.
 */
export function bootstrapCi(xs: readonly number[], resamples = BOOTSTRAP_RESAMPLES, seed = 20240501): [number, number] | null {
  const n = xs.length;
  if (n === 0) return null;
  if (n === 1) return [xs[0], xs[0]];
  const rng = new Rng(seed + n);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += xs[Math.floor(rng.next() * n)];
    means[b] = s / n;
  }
  return quantiles(means);
}

/** The 2.5% and 97.5% quantiles (sorting `means` in place), interpolated between order statistics as numpy does. */
function quantiles(means: Float64Array): [number, number] {
  means.sort();
  const q = (p: number) => {
    const h = (means.length - 1) * p,
      lo = Math.floor(h);
    return means[lo] + (h - lo) * (means[Math.min(means.length - 1, lo + 1)] - means[lo]);
  };
  return [q(0.025), q(0.975)];
}

/**
 * The 95% bootstrap interval of a mean of group means (each group weighted equally, as a mean over tasks):
 * every resample draws each group's cases with replacement within the group.
 */
export function stratifiedBootstrapCi(
  groups: readonly (readonly number[])[],
  resamples = BOOTSTRAP_RESAMPLES,
  seed = 20240501,
): [number, number] | null {
  const gs = groups.filter((g) => g.length > 0);
  if (gs.length === 0) return null;
  if (gs.length === 1) return bootstrapCi(gs[0], resamples, seed);
  const rng = new Rng(seed + gs.reduce((a, g) => a + g.length, 0));
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let total = 0;
    for (const g of gs) {
      let s = 0;
      for (let i = 0; i < g.length; i++) s += g[Math.floor(rng.next() * g.length)];
      total += s / g.length;
    }
    means[b] = total / gs.length;
  }
  return quantiles(means);
}

/** Mean difference a - b over the cases both have (matched by key), with its bootstrap interval. */
export function pairedDifference(
  a: ReadonlyMap<string, number>,
  b: ReadonlyMap<string, number>,
): { mean: number; ci95: [number, number] | null; n: number } | null {
  const d: number[] = [];
  for (const [k, x] of a) {
    const y = b.get(k);
    if (y !== undefined) d.push(x - y);
  }
  if (d.length === 0) return null;
  return { mean: d.reduce((s, x) => s + x, 0) / d.length, ci95: bootstrapCi(d), n: d.length };
}
