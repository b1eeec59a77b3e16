import type { KvCache } from '../../cache/kv-cache.js';
import { add } from '../../autograd/ops/add.js';
import { linear } from '../../autograd/ops/linear.js';
import { prefixAttention, type PrefixHead } from '../../autograd/ops/prefix-attention.js';
import { rmsnorm } from '../../autograd/ops/rmsnorm.js';
import { rope } from '../../autograd/ops/rope.js';
import { addRowBias } from '../../autograd/ops/row-bias.js';
import { swiglu } from '../../autograd/ops/swiglu.js';
import type { Tape } from '../../autograd/tape.js';
import { constant, type Tensor } from '../../autograd/tensor.js';
import { ropeTables, type ModelConfig } from '../../model/config.js';
import type { LayerWeights, Weights } from '../../model/types.js';

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

function frozen(cfg: ModelConfig, w: LayerWeights): FrozenLayer {
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
 * The differentiable forward pass of Judge Q's soft rows alone. The prompt is already in a KV cache (its keys
 * and values are constants: causality means they do not depend on the soft rows), so each layer runs only the
 * m soft rows: RMSNorm, q/k/v projections with the frozen weights, RoPE at positions L .. L + m - 1, attention
 * over [prompt keys; soft keys (causal)], output projection, residual, MLP, residual. The loss needs only each
 * layer's attention probabilities, so the pass stops after the last layer's attention.
 */
export class SoftForward {
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
    this.layers = weights.layers.map((w) => frozen(config, w));
  }

  private ropeFor(positions: number): { cos: Float32Array; sin: Float32Array } {
    if (positions > this.rope.length) {
      const length = Math.min(this.config.maxPositions, Math.max(positions, 2 * this.rope.length, 1024));
      this.rope = { ...ropeTables(this.config, length), length };
    }
    return this.rope;
  }

  /**
   * Per layer, per query head, the soft rows' mean attention on each prompt position: [H, L] tensors whose
   * gradients flow back to `soft` [m, hidden]. `cache` holds exactly the L prompt entries per head at
   * positions start .. start + L - 1; the soft rows sit at start + L, start + L + 1, ...
   */
  promptAttention(tape: Tape | null, soft: Tensor, cache: KvCache, start = 0): Tensor[] {
    const cfg = this.config;
    const { numHeads: H, numKvHeads: Hk, headDim: d, rmsNormEps: eps } = cfg;
    const m = soft.size / cfg.hiddenSize;
    const L = cache.head(0, 0).length;
    const positions = new Int32Array(m);
    for (let i = 0; i < m; i++) positions[i] = start + L + i;
    const { cos, sin } = this.ropeFor(start + L + m);
    const shape = { heads: H, kvHeads: Hk, headDim: d, scale: 1 / Math.sqrt(d) };
    const means: Tensor[] = [];
    let x = soft;
    this.layers.forEach((w, l) => {
      const prefix: PrefixHead[] = cache.layers[l].map((h) => {
        if (h.length !== L) throw new Error('internal error: the prompt cache must hold every prompt entry of every head');
        return { keys: h.keys, values: h.values, n: L };
      });
      const h = rmsnorm(tape, x, w.inputNorm, eps);
      let q = linear(tape, h, w.q),
        k = linear(tape, h, w.k);
      let v = linear(tape, h, w.v);
      if (w.qBias) q = addRowBias(tape, q, w.qBias);
      if (w.kBias) k = addRowBias(tape, k, w.kBias);
      if (w.vBias) v = addRowBias(tape, v, w.vBias);
      if (w.qNorm) q = rmsnorm(tape, q, w.qNorm, eps);
      if (w.kNorm) k = rmsnorm(tape, k, w.kNorm, eps);
      q = rope(tape, q, H, d, positions, cos, sin);
      k = rope(tape, k, Hk, d, positions, cos, sin);
      const a = prefixAttention(tape, q, k, v, prefix, shape);
      means.push(a.prefixMean);
      if (l === this.layers.length - 1) return;
      x = add(tape, x, linear(tape, a.out, w.o));
      const h2 = rmsnorm(tape, x, w.postNorm, eps);
      x = add(tape, x, linear(tape, swiglu(tape, linear(tape, h2, w.gate), linear(tape, h2, w.up)), w.down));
    });
    return means;
  }
}
