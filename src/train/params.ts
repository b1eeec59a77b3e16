import type { ModelConfig } from '../model/config.js';
import { param } from '../autograd/tensor.js';
import { Rng } from '../util/rng.js';
import type { Weights } from '../model/types.js';
import { floatWeights } from '../model/weights.js';
import { Tensor } from '../autograd/tensor.js';

/** The tensors of one decoder layer, named as in Hugging Face Llama checkpoints. */
export interface LayerParams {
  inputNorm: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  postNorm: Tensor;
  gate: Tensor;
  up: Tensor;
  down: Tensor;
}

/** All trainable tensors of a Llama model with tied embeddings. */
export interface ModelParams {
  embed: Tensor;
  layers: LayerParams[];
  finalNorm: Tensor;
}

/** Parameters in a fixed order with their Hugging Face names (the checkpoint and safetensors order). */
export function namedParams(p: ModelParams): { name: string; tensor: Tensor }[] {
  const out = [{ name: 'model.embed_tokens.weight', tensor: p.embed }];
  p.layers.forEach((l, i) => {
    const pre = `model.layers.${i}.`;
    out.push(
      { name: `${pre}input_layernorm.weight`, tensor: l.inputNorm },
      { name: `${pre}self_attn.q_proj.weight`, tensor: l.q },
      { name: `${pre}self_attn.k_proj.weight`, tensor: l.k },
      { name: `${pre}self_attn.v_proj.weight`, tensor: l.v },
      { name: `${pre}self_attn.o_proj.weight`, tensor: l.o },
      { name: `${pre}post_attention_layernorm.weight`, tensor: l.postNorm },
      { name: `${pre}mlp.gate_proj.weight`, tensor: l.gate },
      { name: `${pre}mlp.up_proj.weight`, tensor: l.up },
      { name: `${pre}mlp.down_proj.weight`, tensor: l.down },
    );
  });
  out.push({ name: 'model.norm.weight', tensor: p.finalNorm });
  return out;
}

export function countParams(p: ModelParams): number {
  return namedParams(p).reduce((a, t) => a + t.tensor.size, 0);
}

/**
 * GPT-2 style initialisation: normal(0, 0.02) for matrices, the residual output projections scaled by
 * 1/sqrt(2 * layers) so the residual stream starts near unit scale; norms at 1.
 */
export function initParams(cfg: ModelConfig, seed: number): ModelParams {
  const rng = new Rng(seed);
  const D = cfg.hiddenSize,
    H = cfg.numHeads,
    Hk = cfg.numKvHeads,
    d = cfg.headDim,
    I = cfg.intermediateSize;
  const std = 0.02,
    resid = std / Math.sqrt(2 * cfg.numLayers);
  const mat = (rows: number, cols: number, s: number, name: string) => param(rng.normalArray(rows * cols, s), [rows, cols], name);
  const ones = (n: number, name: string) => param(new Float32Array(n).fill(1), [n], name);
  const layers: LayerParams[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    layers.push({
      inputNorm: ones(D, `l${i}.inputNorm`),
      q: mat(H * d, D, std, `l${i}.q`),
      k: mat(Hk * d, D, std, `l${i}.k`),
      v: mat(Hk * d, D, std, `l${i}.v`),
      o: mat(D, H * d, resid, `l${i}.o`),
      postNorm: ones(D, `l${i}.postNorm`),
      gate: mat(I, D, std, `l${i}.gate`),
      up: mat(I, D, std, `l${i}.up`),
      down: mat(D, I, resid, `l${i}.down`),
    });
  }
  return { embed: mat(cfg.vocabSize, D, std, 'embed'), layers, finalNorm: ones(D, 'finalNorm') };
}

/** Parameters from loaded engine weights (shared arrays, no copy); trainable or frozen. */
export function paramsFromWeights(weights: Weights, trainable: boolean): ModelParams {
  const w = floatWeights(weights);
  const t = (data: Float32Array, shape: number[], name: string) => new Tensor(data, shape, trainable, name);
  const mat = (data: Float32Array, cols: number, name: string) => t(data, [data.length / cols, cols], name);
  const D = w.finalNorm.length;
  return {
    embed: mat(w.embed, D, 'embed'),
    layers: w.layers.map((l, i) => ({
      inputNorm: t(l.inputNorm, [D], `l${i}.inputNorm`),
      q: mat(l.q, D, `l${i}.q`),
      k: mat(l.k, D, `l${i}.k`),
      v: mat(l.v, D, `l${i}.v`),
      o: mat(l.o, l.q.length / D, `l${i}.o`),
      postNorm: t(l.postNorm, [D], `l${i}.postNorm`),
      gate: mat(l.gate, D, `l${i}.gate`),
      up: mat(l.up, D, `l${i}.up`),
      down: mat(l.down, l.gate.length / D, `l${i}.down`),
    })),
    finalNorm: t(w.finalNorm, [D], 'finalNorm'),
  };
}
