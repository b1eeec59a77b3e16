/**
 * An independent float64 forward pass of a Llama / Mistral / Qwen2 / Qwen3 decoder, written plainly from
 * the definitions (Hugging Face modeling_llama / modeling_qwen3): full causal attention over every row,
 * no cache, no kernels, nothing shared with the engine but the config and weight types. Slow and simple:
 * the oracle the engine is tested against.
 */
import type { ModelConfig } from '../../src/model/config.js';
import type { Weights } from '../../src/model/types.js';
import { floatWeights } from '../../src/model/weights.js';

export interface ReferenceInput {
  /** token ids, or ... */
  tokens?: ArrayLike<number>;
  /** ... input embeddings [rows * hidden] */
  embeddings?: ArrayLike<number>;
  /** absolute positions (default 0, 1, 2, ...) */
  positions?: ArrayLike<number>;
  /**
   * Extra mask on top of causality: whether query head `qHead` at `qPos` may see the key at `kPos` in `layer`
   * (describes an evicted cache: a brute-force stand-in for heads of different lengths).
   */
  visible?: (layer: number, qHead: number, qPos: number, kPos: number) => boolean;
  /** compute the last row's logits only (the lm head is the costly part at large vocabularies) */
  lastOnly?: boolean;
  /**
   * RoPE pairing: Hugging Face's rotate_half (dimension i with i + d/2, the default) or the interleaved pairs
   * (2i, 2i + 1) that llama.cpp's "llama" GGUF files are laid out for (their q/k rows permuted to match)
   */
  rope?: 'half' | 'interleaved';
  /**
   * What the cache stores of a row's keys (after RoPE) or values, every KV head [Hkv * d], changed in place:
   * attention reads the stored row (an f16 cache: nearest halves). The returned keys and values are the stored ones.
   */
  storeKv?: (layer: number, position: number, kind: 'k' | 'v', row: Float64Array) => void;
  /**
   * Weights that replace a layer's own for one row (LoRA on some rows: the caller passes W + (alpha / r) B A
   * merged in float64); a matrix left out, or undefined for the row, is the layer's own.
   */
  /**
   * What the linear layers see of their input row (a bf16 product that rounds its activations to bf16 first):
   * returns the row to multiply; default the row itself. The decode's and the lm head's rows are included.
   */
  linearInput?: (x: Float64Array) => Float64Array;
  rowWeights?: (
    layer: number,
    row: number,
  ) => Partial<Record<'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down', ArrayLike<number>>> | undefined;
}

export interface ReferenceOutput {
  /** logits per row: [rows][vocab] (just the last row when lastOnly) */
  logits: Float64Array[];
  /** per layer, per row: queries [H*d] and keys/values [Hkv*d] after RoPE, as an observer would see them */
  queries: Float64Array[][];
  keys: Float64Array[][];
  values: Float64Array[][];
}

function rmsnorm(x: Float64Array, w: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * w[i];
  return out;
}

/** y = W x for W stored [out, in] row-major. */
function product(w: ArrayLike<number>, x: Float64Array, outDim: number): Float64Array {
  const inDim = x.length;
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = 0;
    const base = o * inDim;
    for (let i = 0; i < inDim; i++) s += w[base + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** RoPE inverse frequencies, with Llama-3 "llama3" rope_scaling (transformers _compute_llama3_parameters). */
function inverseFrequencies(cfg: ModelConfig): number[] {
  const d = cfg.headDim;
  const freqs: number[] = [];
  for (let i = 0; i < d; i += 2) freqs.push(1 / cfg.ropeTheta ** (i / d));
  const sc = cfg.ropeScaling;
  if (!sc) return freqs;
  const oldCtx = sc.originalMaxPositionEmbeddings;
  const lowFreqWavelen = oldCtx / sc.lowFreqFactor;
  const highFreqWavelen = oldCtx / sc.highFreqFactor;
  return freqs.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / sc.factor;
    const smooth = (oldCtx / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
    return (1 - smooth) * (f / sc.factor) + smooth * f;
  });
}

/** rotate_half RoPE of one head vector x[d] at position p: x*cos + rotate_half(x)*sin. */
function ropeHalf(x: Float64Array, offset: number, d: number, p: number, inv: number[]): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const angle = p * inv[i];
    const c = Math.cos(angle),
      s = Math.sin(angle);
    const a = x[offset + i],
      b = x[offset + half + i];
    x[offset + i] = a * c - b * s;
    x[offset + half + i] = b * c + a * s;
  }
}

/** Interleaved RoPE (GPT-J / llama.cpp's normal mode): pairs (2i, 2i + 1) rotated by p * inv[i]. */
function ropeInterleaved(x: Float64Array, offset: number, d: number, p: number, inv: number[]): void {
  for (let i = 0; i < d / 2; i++) {
    const angle = p * inv[i];
    const c = Math.cos(angle),
      s = Math.sin(angle);
    const a = x[offset + 2 * i],
      b = x[offset + 2 * i + 1];
    x[offset + 2 * i] = a * c - b * s;
    x[offset + 2 * i + 1] = b * c + a * s;
  }
}

/**
 * The whole forward pass; returns every row's logits and every layer's q/k/v. Block-quantized matrices are read
 * as their dequantized values (floatWeights), in float64 like every other weight.
 */
export function referenceForward(cfg: ModelConfig, weights: Weights, input: ReferenceInput): ReferenceOutput {
  const w = floatWeights(weights);
  const hidden = cfg.hiddenSize,
    H = cfg.numHeads,
    Hkv = cfg.numKvHeads,
    d = cfg.headDim;
  const rows = input.tokens ? input.tokens.length : input.embeddings!.length / hidden;
  const pos = Array.from({ length: rows }, (_, r) => (input.positions ? input.positions[r] : r));
  const inv = inverseFrequencies(cfg);
  const eps = cfg.rmsNormEps;
  const rope = input.rope === 'interleaved' ? ropeInterleaved : ropeHalf;
  const see = input.linearInput ?? ((x: Float64Array) => x);
  const matvec = (wm: ArrayLike<number>, x: Float64Array, outDim: number) => product(wm, see(x), outDim);

  // hidden states, one Float64Array per row
  let hs: Float64Array[] = [];
  for (let r = 0; r < rows; r++) {
    const h = new Float64Array(hidden);
    for (let i = 0; i < hidden; i++) h[i] = input.tokens ? w.embed[input.tokens[r] * hidden + i] : input.embeddings![r * hidden + i];
    hs.push(h);
  }

  const out: ReferenceOutput = { logits: [], queries: [], keys: [], values: [] };
  for (let l = 0; l < cfg.numLayers; l++) {
    const L = w.layers[l];
    const qs: Float64Array[] = [],
      ks: Float64Array[] = [],
      vs: Float64Array[] = [];
    const W = (r: number) => ({ ...L, ...(input.rowWeights?.(l, r) ?? {}) });
    for (let r = 0; r < rows; r++) {
      const x = rmsnorm(hs[r], L.inputNorm, eps);
      const w = W(r);
      const q = matvec(w.q, x, H * d),
        k = matvec(w.k, x, Hkv * d),
        v = matvec(w.v, x, Hkv * d);
      if (L.qBias) for (let i = 0; i < q.length; i++) q[i] += L.qBias[i];
      if (L.kBias) for (let i = 0; i < k.length; i++) k[i] += L.kBias[i];
      if (L.vBias) for (let i = 0; i < v.length; i++) v[i] += L.vBias[i];
      for (let h = 0; h < H; h++) {
        if (L.qNorm) q.set(rmsnorm(q.subarray(h * d, (h + 1) * d), L.qNorm, eps), h * d);
        rope(q, h * d, d, pos[r], inv);
      }
      for (let h = 0; h < Hkv; h++) {
        if (L.kNorm) k.set(rmsnorm(k.subarray(h * d, (h + 1) * d), L.kNorm, eps), h * d);
        rope(k, h * d, d, pos[r], inv);
      }
      input.storeKv?.(l, pos[r], 'k', k);
      input.storeKv?.(l, pos[r], 'v', v);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    out.queries.push(qs);
    out.keys.push(ks);
    out.values.push(vs);

    const next: Float64Array[] = [];
    const group = H / Hkv;
    for (let r = 0; r < rows; r++) {
      // causal softmax attention: row r sees rows whose position is <= its own
      const att = new Float64Array(H * d);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const scores: number[] = [];
        const seen: number[] = [];
        for (let j = 0; j < rows; j++) {
          if (pos[j] > pos[r]) continue;
          if (input.visible && !input.visible(l, h, pos[r], pos[j])) continue;
          let s = 0;
          for (let i = 0; i < d; i++) s += qs[r][h * d + i] * ks[j][kvh * d + i];
          scores.push(s / Math.sqrt(d));
          seen.push(j);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < seen.length; t++) {
          for (let i = 0; i < d; i++) att[h * d + i] += (e[t] / z) * vs[seen[t]][kvh * d + i];
        }
      }
      const h1 = new Float64Array(hs[r]);
      const w = W(r);
      const o = matvec(w.o, att, hidden);
      for (let i = 0; i < hidden; i++) h1[i] += o[i];
      // SwiGLU MLP
      const x = rmsnorm(h1, L.postNorm, eps);
      const g = matvec(w.gate, x, cfg.intermediateSize),
        u = matvec(w.up, x, cfg.intermediateSize);
      for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
      const dn = matvec(w.down, g, hidden);
      for (let i = 0; i < hidden; i++) h1[i] += dn[i];
      next.push(h1);
    }
    hs = next;
  }
  for (let r = input.lastOnly ? rows - 1 : 0; r < rows; r++)
    out.logits.push(matvec(w.lmHead, rmsnorm(hs[r], w.finalNorm, eps), cfg.vocabSize));
  return out;
}

/** The spacing of IEEE halves around x: 2^(e - 10) in x's binade 2^e (2^-24 below 2^-14, the subnormals). */
export function halfUlp(x: number): number {
  const a = Math.abs(x);
  if (a === 0) return 2 ** -24;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return 2 ** (Math.max(e, -14) - 10);
}

/**
 * x rounded to the nearest IEEE half, ties to even (an f16 cache's storeKv), by arithmetic in float64: the unit
 * in the last place of x's binade (subnormals below 2^-14), past 65504 infinity.
 */
export function roundToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const ulp = halfUlp(a);
  const q = a / ulp,
    f = Math.floor(q);
  const r = q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  const v = r * ulp;
  return Math.sign(x) * (v > 65504 ? Infinity : v);
}
