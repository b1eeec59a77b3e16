import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { fastExp } from '../fast-exp.js';

export interface CrossEntropyResult {
  /** scalar: sum_r w_r * CE_r / sum_r w_r */
  loss: Tensor;
  /** per-row CE in nats (0 where the weight is 0) */
  rowLoss: Float32Array;
  /** per-row argmax of the logits */
  argmax: Int32Array;
}

/**
 * Weighted mean softmax cross-entropy of logits[rows, vocab] against `targets`; rows with weight 0 are
 * skipped (prompt tokens, padding).
 */
export function crossEntropy(tape: Tape | null, logits: Tensor, targets: Int32Array, weights: Float32Array): CrossEntropyResult {
  const vocab = logits.shape[logits.shape.length - 1];
  const rows = targets.length;
  const ld = logits.data;
  let wsum = 0;
  for (let r = 0; r < rows; r++) wsum += weights[r];
  const norm = wsum > 0 ? 1 / wsum : 0;
  const rowLoss = new Float32Array(rows);
  const argmax = new Int32Array(rows);
  const lse = new Float32Array(rows);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * vocab;
    let max = -Infinity, am = 0;
    for (let j = 0; j < vocab; j++) if (ld[o + j] > max) { max = ld[o + j]; am = j; }
    argmax[r] = am;
    if (weights[r] === 0) continue;
    let s = 0;
    for (let j = 0; j < vocab; j++) s += fastExp(ld[o + j] - max);
    lse[r] = max + Math.log(s);
    rowLoss[r] = lse[r] - ld[o + targets[r]];
    total += weights[r] * rowLoss[r];
  }
  const loss = new Tensor(new Float32Array([total * norm]), [1], logits.requiresGrad);
  if (tape && loss.requiresGrad) {
    tape.record(() => {
      const dl = loss.grad;
      if (dl === null) return;
      const g = logits.gradBuf();
      for (let r = 0; r < rows; r++) {
        if (weights[r] === 0) continue;
        const o = r * vocab, c = dl[0] * weights[r] * norm, m = lse[r];
        for (let j = 0; j < vocab; j++) g[o + j] += c * fastExp(ld[o + j] - m);
        g[o + targets[r]] -= c;
      }
    });
  }
  return { loss, rowLoss, argmax };
}
