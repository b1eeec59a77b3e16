import { CacheOnlyScorer } from './cache-only.js';

/** KeyDiff: -cos(k_j, mean_i normalize(k_i)) per KV head; the most distinctive keys score highest. */
export const keydiffScorer = (): CacheOnlyScorer =>
  new CacheOnlyScorer('keydiff', () => (head, d) => {
    const n = head.length;
    const norms = new Float64Array(n);
    const anchor = new Float64Array(d);
    const keys = head.keyRows();
    for (let j = 0; j < n; j++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += keys[j * d + i] ** 2;
      norms[j] = Math.sqrt(ss);
      const inv = norms[j] > 0 ? 1 / norms[j] : 0;
      for (let i = 0; i < d; i++) anchor[i] += keys[j * d + i] * inv;
    }
    let an = 0;
    for (let i = 0; i < d; i++) an += (anchor[i] / n) ** 2;
    an = Math.sqrt(an);
    const s = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += keys[j * d + i] * (anchor[i] / n);
      const denom = norms[j] * an;
      s[j] = denom > 0 ? -dot / denom : 0;
    }
    return s;
  });
