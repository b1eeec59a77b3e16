/**
 * An independent float64 Llama forward (plain loops, no kernels, no tape) used as the reference for
 * gradient checks by central finite differences.
 */
export interface Llama64Shape {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  inter: number;
  eps: number;
  theta: number;
}

/** Parameters in the order of namedParams(): embed, then per layer 9 tensors, then the final norm. */
export type Params64 = Float64Array[];

export function rmsnorm64(x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * s * w[i];
  }
  return y;
}

/** y[rows, out] = x . W^T with W [out, in] */
export function linear64(x: Float64Array, w: Float64Array, rows: number, inDim: number, out: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * out + o] = s;
    }
  return y;
}

export function rope64(x: Float64Array, rows: number, heads: number, d: number, positions: Int32Array, theta: number): Float64Array {
  const y = new Float64Array(x);
  const half = d / 2;
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = positions[r] / Math.pow(theta, (2 * i) / d);
        const o = (r * heads + h) * d;
        const x0 = x[o + i],
          x1 = x[o + half + i];
        y[o + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
        y[o + half + i] = x1 * Math.cos(a) + x0 * Math.sin(a);
      }
  return y;
}

/** Causal GQA attention over sequences given as [start, length] spans. */
export function attention64(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  spans: { start: number; length: number }[],
  heads: number,
  kvHeads: number,
  d: number,
): Float64Array {
  const out = new Float64Array(q.length);
  const group = heads / kvHeads;
  for (const s of spans)
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < s.length; i++) {
        const qi = (s.start + i) * heads * d + h * d;
        const sc: number[] = [];
        for (let j = 0; j <= i; j++) {
          const kj = (s.start + j) * kvHeads * d + g * d;
          let t = 0;
          for (let c = 0; c < d; c++) t += q[qi + c] * k[kj + c];
          sc.push(t / Math.sqrt(d));
        }
        const m = Math.max(...sc);
        const e = sc.map((t) => Math.exp(t - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          const vj = (s.start + j) * kvHeads * d + g * d;
          for (let c = 0; c < d; c++) out[qi + c] += (e[j] / z) * v[vj + c];
        }
      }
    }
  return out;
}

export function swiglu64(g: Float64Array, u: Float64Array): Float64Array {
  return g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]);
}

/** Weighted mean cross-entropy of the tied-head logits. */
export function crossEntropy64(logits: Float64Array, vocab: number, targets: Int32Array, weights: Float32Array): number {
  let tot = 0,
    ws = 0;
  for (let r = 0; r < targets.length; r++) {
    if (weights[r] === 0) continue;
    let m = -Infinity;
    for (let j = 0; j < vocab; j++) m = Math.max(m, logits[r * vocab + j]);
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(logits[r * vocab + j] - m);
    tot += weights[r] * (m + Math.log(s) - logits[r * vocab + targets[r]]);
    ws += weights[r];
  }
  return tot / ws;
}

export function add64(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((x, i) => x + b[i]);
}

/** The loss of a whole tied-embedding Llama in float64. */
export function llamaLoss64(
  s: Llama64Shape,
  p: Params64,
  ids: Int32Array,
  positions: Int32Array,
  spans: { start: number; length: number }[],
  targets: Int32Array,
  weights: Float32Array,
): number {
  const rows = ids.length,
    D = s.hidden,
    H = s.heads,
    Hk = s.kvHeads,
    d = s.headDim;
  let x: Float64Array = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) for (let i = 0; i < D; i++) x[r * D + i] = p[0][ids[r] * D + i];
  for (let l = 0; l < s.layers; l++) {
    const [inN, wq, wk, wv, wo, postN, wg, wu, wd] = p.slice(1 + l * 9, 10 + l * 9);
    const h = rmsnorm64(x, inN, rows, D, s.eps);
    const q = rope64(linear64(h, wq, rows, D, H * d), rows, H, d, positions, s.theta);
    const k = rope64(linear64(h, wk, rows, D, Hk * d), rows, Hk, d, positions, s.theta);
    const v = linear64(h, wv, rows, D, Hk * d);
    x = add64(x, linear64(attention64(q, k, v, spans, H, Hk, d), wo, rows, H * d, D));
    const h2 = rmsnorm64(x, postN, rows, D, s.eps);
    x = add64(x, linear64(swiglu64(linear64(h2, wg, rows, D, s.inter), linear64(h2, wu, rows, D, s.inter)), wd, rows, s.inter, D));
  }
  const hf = rmsnorm64(x, p[p.length - 1], rows, D, s.eps);
  return crossEntropy64(linear64(hf, p[0], rows, D, s.vocab), s.vocab, targets, weights);
}
