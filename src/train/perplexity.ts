import type { LlamaModel } from '../model/llama.js';

/**
 * Negative log-likelihood of `ids` in consecutive windows of `window` tokens (each from position 0, a fresh
 * cache), up to `maxTokens` predicted tokens: the held-out perplexity of the model cards. `onWindow` sees each
 * window's ids (the first token and the `window` it predicts).
 */
export function windowedNll(
  model: LlamaModel,
  ids: ArrayLike<number>,
  window: number,
  maxTokens: number,
  onWindow?: (chunk: Int32Array) => void,
): { nll: number; count: number } {
  const V = model.config.vocabSize;
  const positions = Int32Array.from({ length: window }, (_, i) => i);
  let nll = 0,
    count = 0;
  for (let off = 0; off + window + 1 <= ids.length && count < maxTokens; off += window) {
    const chunk = Int32Array.from(Array.prototype.slice.call(ids, off, off + window + 1) as number[]);
    const logits = model.forward({ tokens: chunk.subarray(0, window), positions, cache: model.newCache(), logits: 'all' });
    for (let r = 0; r < window; r++) {
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, logits[r * V + j]);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[r * V + j] - max);
      nll += max + Math.log(s) - logits[r * V + chunk[r + 1]];
      count++;
    }
    onWindow?.(chunk);
  }
  return { nll, count };
}
