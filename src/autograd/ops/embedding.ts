import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** Rows of `table[vocab, dim]` picked by `ids`; the backward rule scatter-adds into the table's gradient. */
export function embedding(tape: Tape | null, table: Tensor, ids: Int32Array): Tensor {
  const [vocab, dim] = table.shape;
  const rows = ids.length;
  const y = Tensor.output([rows, dim], table.requiresGrad);
  for (let r = 0; r < rows; r++) {
    const id = ids[r];
    if (id < 0 || id >= vocab) throw new Error(`internal error: token id ${id} outside the vocabulary of ${vocab}`);
    y.data.set(table.data.subarray(id * dim, id * dim + dim), r * dim);
  }
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      const g = table.gradBuf();
      for (let r = 0; r < rows; r++) {
        const o = ids[r] * dim,
          s = r * dim;
        for (let i = 0; i < dim; i++) g[o + i] += dy[s + i];
      }
    });
  }
  return y;
}
