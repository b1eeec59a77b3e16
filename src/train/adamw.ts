import type { Tensor } from '../autograd/tensor.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/**
 * AdamW (decoupled weight decay, bias-corrected moments). Decay applies to matrices only, not to
 * norm weights (1-D tensors).
 */
export class AdamW {
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** number of updates taken so far */
  t = 0;

  constructor(
    readonly params: Tensor[],
    readonly opts: AdamWOptions = DEFAULT_ADAMW,
  ) {
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  step(lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.opts;
    const c1 = 1 - Math.pow(b1, this.t),
      c2 = 1 - Math.pow(b2, this.t);
    this.params.forEach((p, k) => {
      const g = p.grad;
      if (g === null) return;
      const m = this.m[k],
        v = this.v[k],
        w = p.data;
      const decay = p.shape.length >= 2 ? 1 - lr * weightDecay : 1;
      for (let i = 0; i < w.length; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] = w[i] * decay - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    });
  }
}

/** Scale all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  let ss = 0;
  for (const p of params) if (p.grad) for (const g of p.grad) ss += g * g;
  const norm = Math.sqrt(ss);
  if (norm > maxNorm && norm > 0) {
    const s = maxNorm / norm;
    for (const p of params) if (p.grad) for (let i = 0; i < p.grad.length; i++) p.grad[i] *= s;
  }
  return norm;
}
