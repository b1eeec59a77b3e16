import { HeadCache, KvCache } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import type { KeepPlan } from './types.js';

/**
 * A new cache holding only the planned entries of `cache` (which is left untouched), with room for `extra`
 * more entries per head (LAQ's temporary stage-1 cache, decoded on for a few steps).
 */
export function selectCache(cache: KvCache, plan: KeepPlan, extra = 0): KvCache {
  const out = new KvCache(cache.numLayers, cache.numKvHeads, cache.headDim, cache.dtype);
  const d = cache.headDim;
  for (let l = 0; l < cache.numLayers; l++) {
    for (let h = 0; h < cache.numKvHeads; h++) {
      const src = cache.head(l, h);
      const keep = plan[l][h];
      const dst = new HeadCache(d, keep.length + extra, cache.dtype);
      let j = 0;
      for (let i = 0; i < keep.length; i++) {
        const pos = keep[i];
        while (j < src.length && src.positions[j] < pos) j++;
        if (j >= src.length || src.positions[j] !== pos)
          throw new KvevictError(`plan keeps position ${pos}, which is not in layer ${l} head ${h}`);
        dst.keyData.set(src.keyData.subarray(j * d, (j + 1) * d), i * d);
        dst.valueData.set(src.valueData.subarray(j * d, (j + 1) * d), i * d);
        dst.positions[i] = pos;
      }
      dst.length = keep.length;
      out.setHead(l, h, dst);
    }
  }
  return out;
}

/** The plan that keeps every entry. */
export function keepAllPlan(cache: KvCache): KeepPlan {
  return cache.layers.map((layer) => layer.map((h) => h.positions.slice(0, h.length)));
}
