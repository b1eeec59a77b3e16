import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { kernels } from '../../kernels/index.js';

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
  let wsum = 0;
  for (let r = 0; r < rows; r++) wsum += weights[r];
  const norm = wsum > 0 ? 1 / wsum : 0;
  const rowLoss = new Float32Array(rows);
  const argmax = new Int32Array(rows);
  const lse = new Float32Array(rows);
  const k = kernels();
  k.crossEntropy(logits.data, rows, vocab, targets, weights, lse, rowLoss, argmax);
  let total = 0;
  for (let r = 0; r < rows; r++) if (weights[r] !== 0) total += weights[r] * rowLoss[r];
  const loss = new Tensor(new Float32Array([total * norm]), [1], logits.requiresGrad);
  if (tape && loss.requiresGrad) {
    tape.record(() => {
      const dl = loss.grad;
      if (dl === null) return;
      const coef = new Float32Array(rows);
      for (let r = 0; r < rows; r++) coef[r] = dl[0] * weights[r] * norm;
      k.crossEntropyGrad(logits.gradBuf(), logits.data, rows, vocab, targets, lse, coef);
    });
  }
  return { loss, rowLoss, argmax };
}
