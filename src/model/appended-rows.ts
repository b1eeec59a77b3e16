/**
 * The differentiable forward pass of rows appended after a cached prompt: Judge Q's soft tokens and
 * LookaheadKV's lookahead tokens (with LoRA adapters that act on those rows only). Training backpropagates
 * through it; LookaheadKV's press runs it without a tape, so training and inference share one definition.
 */
import type { KvCache } from '../cache/kv-cache.js';
import { add } from '../autograd/ops/add.js';
import { linear } from '../autograd/ops/linear.js';
import { prefixAttention, type PrefixHead } from '../autograd/ops/prefix-attention.js';
import { rmsnorm } from '../autograd/ops/rmsnorm.js';
import { rope } from '../autograd/ops/rope.js';
import { addRowBias } from '../autograd/ops/row-bias.js';
import { scale } from '../autograd/ops/scale.js';
import { swiglu } from '../autograd/ops/swiglu.js';
import type { Tape } from '../autograd/tape.js';
import { constant, type Tensor } from '../autograd/tensor.js';
import { KvevictError } from '../errors.js';
import { ropeTables, type ModelConfig } from './config.js';
import type { LayerWeights, Weights } from './types.js';
import { floatWeights } from './weights.js';

/** The linear layers a LoRA adapter may sit on, in the order files list them. */
export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** One low-rank update W + (alpha / rank) B A: a [rank, in], b [out, rank]. */
export interface LoraPair {
  a: Tensor;
  b: Tensor;
}

/** LoRA adapters per layer (a target left out has none), applied to the appended rows only. */
export interface Lora {
  rank: number;
  alpha: number;
  layers: Partial<Record<LoraTarget, LoraPair>>[];
}

/** [out, in] of each target's weight. */
export function loraShape(cfg: ModelConfig, t: LoraTarget): [number, number] {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hk, headDim: d, intermediateSize: I } = cfg;
  const shapes: Record<LoraTarget, [number, number]> = {
    q: [H * d, D],
    k: [Hk * d, D],
    v: [Hk * d, D],
    o: [D, H * d],
    gate: [I, D],
    up: [I, D],
    down: [D, I],
  };
  return shapes[t];
}

/** What the appended rows produced in each layer. */
export interface AppendedRowsResult {
  /** per layer [H, L]: per query head, the rows' mean attention probability on each prompt entry */
  promptAttention: Tensor[];
  /** per layer [rows, H * d] post-RoPE queries (copies), when asked for */
  queries: Float32Array[] | null;
}

/** The frozen weights of one layer as constant tensors (views, no copies). */
interface FrozenLayer {
  inputNorm: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  postNorm: Tensor;
  gate: Tensor;
  up: Tensor;
  down: Tensor;
}

function frozen(cfg: ModelConfig, w: LayerWeights<Float32Array>): FrozenLayer {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hk, headDim: d, intermediateSize: I } = cfg;
  const opt = (a: Float32Array | null, n: number) => (a ? constant(a, [n]) : null);
  return {
    inputNorm: constant(w.inputNorm, [D]),
    q: constant(w.q, [H * d, D]),
    k: constant(w.k, [Hk * d, D]),
    v: constant(w.v, [Hk * d, D]),
    o: constant(w.o, [D, H * d]),
    qBias: opt(w.qBias, H * d),
    kBias: opt(w.kBias, Hk * d),
    vBias: opt(w.vBias, Hk * d),
    qNorm: opt(w.qNorm, d),
    kNorm: opt(w.kNorm, d),
    postNorm: constant(w.postNorm, [D]),
    gate: constant(w.gate, [I, D]),
    up: constant(w.up, [I, D]),
    down: constant(w.down, [D, I]),
  };
}

/**
 * The m appended rows alone. The prompt is already in a KV cache (its keys and values are constants:
 * causality means they do not depend on the appended rows), so each layer runs only the m rows: RMSNorm, q/k/v
 * projections with the frozen weights (plus LoRA where given), RoPE at positions P .. P + m - 1, attention
 * over [prompt keys; row keys (causal)], output projection, residual, MLP, residual. Scores need only each
 * layer's attention probabilities, so the pass stops after the last layer's attention; the rows' keys and
 * values never enter the cache.
 */
export class AppendedRows {
  private readonly layers: FrozenLayer[];
  private rope: { cos: Float32Array; sin: Float32Array; length: number } = {
    cos: new Float32Array(0),
    sin: new Float32Array(0),
    length: 0,
  };

  constructor(
    readonly config: ModelConfig,
    weights: Weights,
  ) {
    // a quantized model's matrices are dequantized: the autograd products read float32
    this.layers = floatWeights(weights).layers.map((w) => frozen(config, w));
  }

  private ropeFor(positions: number): { cos: Float32Array; sin: Float32Array } {
    if (positions > this.rope.length) {
      const length = Math.min(this.config.maxPositions, Math.max(positions, 2 * this.rope.length, 1024));
      this.rope = { ...ropeTables(this.config, length), length };
    }
    return this.rope;
  }

  /**
   * Per layer, per query head, the rows' mean attention on each prompt entry: [H, L] tensors whose gradients
   * flow back to `rows` [m, hidden] and to the LoRA pairs. Every head of `cache` holds the same L entries (a
   * full prompt cache); the rows sit at positions `first` .. first + m - 1 (default L: a prompt from 0).
   */
  run(
    tape: Tape | null,
    rows: Tensor,
    cache: KvCache,
    o: { first?: number; lora?: Lora | null; queries?: boolean } = {},
  ): AppendedRowsResult {
    const cfg = this.config;
    const { numHeads: H, numKvHeads: Hk, headDim: d, rmsNormEps: eps } = cfg;
    const m = rows.size / cfg.hiddenSize;
    const L = cache.head(0, 0).length;
    const first = o.first ?? L;
    const lora = o.lora ?? null;
    const positions = new Int32Array(m);
    for (let i = 0; i < m; i++) positions[i] = first + i;
    const { cos, sin } = this.ropeFor(first + m);
    const shape = { heads: H, kvHeads: Hk, headDim: d, scale: 1 / Math.sqrt(d) };
    const result: AppendedRowsResult = { promptAttention: [], queries: o.queries ? [] : null };
    const s = lora ? lora.alpha / lora.rank : 0;
    let x = rows;
    this.layers.forEach((w, l) => {
      const adapters = lora?.layers[l] ?? {};
      /** x W^T, plus (alpha / rank) (x A^T) B^T where the layer has an adapter on `t` */
      const proj = (t: LoraTarget, input: Tensor, weight: Tensor): Tensor => {
        const y = linear(tape, input, weight);
        const p = adapters[t];
        return p ? add(tape, y, scale(tape, linear(tape, linear(tape, input, p.a), p.b), s)) : y;
      };
      const prefix: PrefixHead[] = cache.layers[l].map((h) => {
        if (h.length !== L)
          throw new KvevictError(
            `the appended rows need the full prompt cache (every head with all ${L} entries); layer ${l} has a head of ${h.length}`,
          );
        return { keys: h.keyRows(), values: h.valueRows(), n: L };
      });
      const h = rmsnorm(tape, x, w.inputNorm, eps);
      let q = proj('q', h, w.q),
        k = proj('k', h, w.k);
      let v = proj('v', h, w.v);
      if (w.qBias) q = addRowBias(tape, q, w.qBias);
      if (w.kBias) k = addRowBias(tape, k, w.kBias);
      if (w.vBias) v = addRowBias(tape, v, w.vBias);
      if (w.qNorm) q = rmsnorm(tape, q, w.qNorm, eps);
      if (w.kNorm) k = rmsnorm(tape, k, w.kNorm, eps);
      q = rope(tape, q, H, d, positions, cos, sin);
      k = rope(tape, k, Hk, d, positions, cos, sin);
      result.queries?.push(q.data.slice());
      const a = prefixAttention(tape, q, k, v, prefix, shape);
      result.promptAttention.push(a.prefixMean);
      if (l === this.layers.length - 1) return;
      x = add(tape, x, proj('o', a.out, w.o));
      const h2 = rmsnorm(tape, x, w.postNorm, eps);
      x = add(tape, x, proj('down', swiglu(tape, proj('gate', h2, w.gate), proj('up', h2, w.up)), w.down));
    });
    return result;
  }
}
