/**
 * The attention-matching losses of Judge Q and LookaheadKV for one (prompt, response) pair:
 *   target  A_resp[l, h, j] = mean over response tokens of their attention to prompt position j (P + R with the
 *           full cache; softmax over every key a response row sees, prompt and response, then restricted to
 *           the prompt columns),
 *   student A_soft[l, h, j] = mean over the m learned rows of their attention to prompt position j (P + rows,
 *           LookaheadKV's LoRA active on the rows),
 *   Judge Q     loss = mean over layers, query heads and prompt positions of (A_soft - A_resp)^2;
 *   LookaheadKV loss = mean over layers and query heads of KL(A_resp || A_soft), each row normalized to sum 1.
 * The prompt runs once through the engine (no gradient); its cache is the constant both sides read.
 */
import { prefill } from '../../generate/pipeline.js';
import type { KvCache, KvDtype } from '../../cache/kv-cache.js';
import { add } from '../../autograd/ops/add.js';
import { klRows } from '../../autograd/ops/kl-rows.js';
import { mse } from '../../autograd/ops/mse.js';
import { Tape } from '../../autograd/tape.js';
import { constant, type Tensor } from '../../autograd/tensor.js';
import { assert } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import type { LlamaModel } from '../../model/llama.js';
import type { LayerView } from '../../model/types.js';
import { accumulateAttention } from '../../press/attention-mass.js';
import type { AppendedRows, Lora } from '../../model/appended-rows.js';

/** Training prefills its prompts into float32 caches: its targets and gradients are those of the exact cache. */
export const TRAINING_KV_DTYPE: KvDtype = 'f32';

export interface JudgeqExample {
  prompt: Int32Array;
  /** the model's own greedy response (not empty) */
  response: Int32Array;
}

/**
 * A_resp: per layer, [H, L] mean attention of the response rows on each prompt position. The response is fed
 * after the prompt on `cache` (a full prompt cache of L entries per head) and removed again afterwards.
 */
export function responseAttention(model: LlamaModel, cache: KvCache, response: Int32Array): Float32Array[] {
  const cfg = model.config;
  const { numLayers: NL, numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
  const G = H / Hkv;
  const L = cache.head(0, 0).length;
  const R = response.length;
  assert(R > 0, 'a response of at least one token');
  const k = kernels();
  const sums = Array.from({ length: NL }, () => Array.from({ length: H }, () => new Float64Array(L + R)));
  const observer = (view: LayerView): void => {
    const rows = view.positions.length;
    for (let h = 0; h < Hkv; h++) {
      const head = cache.head(view.layer, h);
      accumulateAttention(
        k,
        { queries: view.queries, rows, visibleUpTo: view.positions },
        H,
        d,
        h * G,
        G,
        { keys: head.keyRows(), positions: head.positions, n: head.length },
        sums[view.layer].slice(h * G, (h + 1) * G),
      );
    }
  };
  const positions = new Int32Array(R);
  for (let i = 0; i < R; i++) positions[i] = L + i;
  try {
    model.forward({ tokens: response, positions, cache, observer, logits: 'none' });
  } finally {
    cache.truncateFrom(L);
  }
  return sums.map((layer) => {
    const out = new Float32Array(H * L);
    layer.forEach((s, h) => {
      for (let j = 0; j < L; j++) out[h * L + j] = s[j] / R;
    });
    return out;
  });
}

/** What learns: the appended rows' embeddings [m, hidden], LookaheadKV's adapters, and the loss that trains them. */
export interface Learned {
  rows: Tensor;
  lora: Lora | null;
  loss: 'mse' | 'kl';
}

export interface ExampleResult {
  loss: number;
  /** A_resp per layer [H, L] (the oracle's scores come from it) */
  target: Float32Array[];
  promptLength: number;
}

/**
 * The loss of one example. With `train`, the gradient of `weight * loss` is added to the learned tensors'
 * gradients (the backward pass runs through the appended rows only). `prefilled` is the prompt's cache when
 * the caller already has it.
 */
export function exampleLoss(
  model: LlamaModel,
  forward: AppendedRows,
  learned: Learned,
  ex: JudgeqExample,
  train: boolean,
  weight = 1,
  prefilled?: KvCache,
): ExampleResult {
  const cache = prefilled ?? prefill(model, ex.prompt, { kvDtype: TRAINING_KV_DTYPE }).cache;
  const target = responseAttention(model, cache, ex.response);
  const tape = train ? new Tape() : null;
  const means = forward.run(tape, learned.rows, cache, { lora: learned.lora }).promptAttention;
  const H = model.config.numHeads;
  const layerLoss = (l: number): Tensor =>
    learned.loss === 'kl' ? klRows(tape, means[l], target[l], H) : mse(tape, means[l], constant(target[l], means[l].shape));
  let total = layerLoss(0);
  for (let l = 1; l < means.length; l++) total = add(tape, total, layerLoss(l));
  const loss = total.data[0] / means.length;
  if (tape) tape.backwardFrom(total, Float32Array.of(weight / means.length));
  return { loss, target, promptLength: ex.prompt.length };
}
