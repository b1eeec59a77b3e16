import { KvevictError } from '../../errors.js';
import type { Kernels } from '../../kernels/types.js';
import { sharedResult } from '../shared-work.js';
import type { PrefillRun } from '../types.js';
import { floatMatrix } from '../../model/weights.js';

/**
 * ||W_o v_j||_1 for the first `n` entries of one KV head: each value through the output projection of every
 * query head of its group (W_o's columns h*d .. h*d + d), the L1 norm of the result, averaged over the group.
 * What an entry can change in the layer's output (CriticalKV, DefensiveKV). Shared when the run shares work:
 * readers must not modify it.
 */
export function projectedValueNorms(run: PrefillRun, k: Kernels, layer: number, kvHead: number, n: number): Float64Array {
  return sharedResult(run, `wo-norms ${layer} ${kvHead} ${n}`, () => computeNorms(run, k, layer, kvHead, n));
}

function computeNorms(run: PrefillRun, k: Kernels, layer: number, kvHead: number, n: number): Float64Array {
  const cfg = run.model.config;
  const o = run.model.weights?.layers[layer].o;
  const wo = o && floatMatrix(o, k);
  if (!wo) throw new KvevictError("this press needs the model's output projection (W_o), which the model does not expose");
  const d = cfg.headDim,
    hidden = cfg.hiddenSize,
    H = cfg.numHeads,
    G = H / cfg.numKvHeads;
  const values = run.cache.head(layer, kvHead).valueRows(0, n);
  const y = new Float32Array(n * hidden);
  const out = new Float64Array(n);
  for (let g = 0; g < G; g++) {
    const h = kvHead * G + g;
    // y[n, hidden] = V[n, d] . (W_o[:, h d .. h d + d])^T
    k.sgemm(false, true, n, hidden, d, 1, values, d, wo.subarray(h * d), H * d, 0, y, hidden);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = j * hidden, e = i + hidden; i < e; i++) s += Math.abs(y[i]);
      out[j] += s / G;
    }
  }
  return out;
}
