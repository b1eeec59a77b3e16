import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/**
 * The mean over rows of KL(t_r || p_r), where t_r and p_r are row r of `target` (constant) and `pred`, each
 * normalized to sum 1 over its columns: sum_j t_j (log t_j - log p_j). LookaheadKV's loss (pred = the
 * lookahead rows' attention, target = the response's). pred must be positive wherever target is; target
 * entries of 0 add nothing (0 log 0 = 0); a pred entry that underflowed to 0 is read as 1e-30. Row sums of
 * zero are refused.
 */
const FLOOR = 1e-30;

export function klRows(tape: Tape | null, pred: Tensor, target: Float32Array, rows: number): Tensor {
  const n = pred.size;
  if (target.length !== n || n % rows !== 0) throw new Error(`internal error: klRows of ${n} and ${target.length} values in ${rows} rows`);
  const cols = n / rows;
  const pSum = new Float64Array(rows),
    tSum = new Float64Array(rows);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let ps = 0,
      ts = 0;
    for (let j = 0; j < cols; j++) {
      ps += pred.data[r * cols + j];
      ts += target[r * cols + j];
    }
    if (!(ps > 0) || !(ts > 0)) throw new Error(`internal error: klRows row ${r} sums to ${ps} (pred) and ${ts} (target)`);
    pSum[r] = ps;
    tSum[r] = ts;
    let kl = 0;
    for (let j = 0; j < cols; j++) {
      const t = target[r * cols + j] / ts;
      if (t > 0) kl += t * (Math.log(t) - Math.log(Math.max(pred.data[r * cols + j], FLOOR) / ps));
    }
    total += kl;
  }
  const loss = new Tensor(new Float32Array([total / rows]), [1], pred.requiresGrad);
  if (tape && loss.requiresGrad) {
    tape.record(() => {
      const dl = loss.grad;
      if (dl === null) return;
      const g = pred.gradBuf();
      // d/dx_j of -sum_i t_i log(x_i / S) = -t_j / x_j + 1 / S (t sums to 1)
      for (let r = 0; r < rows; r++) {
        const c = dl[0] / rows,
          inv = 1 / pSum[r];
        for (let j = 0; j < cols; j++) {
          const t = target[r * cols + j] / tSum[r];
          g[r * cols + j] += c * (inv - (t > 0 ? t / Math.max(pred.data[r * cols + j], FLOOR) : 0));
        }
      }
    });
  }
  return loss;
}
