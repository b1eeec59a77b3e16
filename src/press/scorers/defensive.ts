import { assert } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import { pool1d } from '../pool.js';
import { sharedResult } from '../shared-work.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';
import { projectedValueNorms } from './projected-values.js';

/**
 * DefensiveKV's scores (methods.md): each window query's attention over the candidates, average-pooled per
 * row and rescaled to the row's mass; the worst case over the window's rows and the group's query heads,
 * floored at its mean (the defensive aggregation); weighted by the entry's share, among the layer's KV heads,
 * of the output-projected value norm; and the entries that hold the first `mass` of the mean attention (less
 * what the window keeps for itself) first, at +infinity.
 */
export class DefensiveScorer implements Scorer {
  readonly name = 'defensivekv';
  readonly wholePrompt =
    "its value-norm shares compare the layer's heads entry by entry, which needs every head to hold the same positions";

  constructor(
    readonly window: number,
    readonly kernel: number,
    readonly mass: number,
  ) {}

  capture(): CaptureRequest {
    return { windowQueries: this.window };
  }

  score(run: PrefillRun, window: number, budget: number): HeadScores {
    const { numKvHeads: Hkv } = run.model.config;
    const k = kernels();
    const n = run.promptLength - window,
      C = budget - window;
    // the attention part does not depend on the budget: a grid's budgets over one prefill share it
    const floors = sharedResult(run, `defensivekv ${window} ${this.kernel}`, () => this.floors(run, window));
    return floors.map(({ worst, meanAttn, windowMass }, l) => {
      const norms = Array.from({ length: Hkv }, (_, g) => projectedValueNorms(run, k, l, g, n));
      return worst.map((floored, g) => {
        const s = floored.slice();
        for (let j = 0; j < n; j++) {
          let total = 0;
          for (let x = 0; x < Hkv; x++) total += norms[x][j];
          s[j] *= total > 0 ? norms[g][j] / total : 0;
        }
        for (const j of massLeaders(meanAttn[g], this.mass - windowMass, C)) s[j] = Infinity;
        return s;
      });
    });
  }

  /** Per layer: each KV head's floored worst-case attention, its group's mean attention, the window's own mass. */
  private floors(run: PrefillRun, window: number): LayerFloors[] {
    const cfg = run.model.config;
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
    const G = H / Hkv;
    const k = kernels();
    const wq = run.captured.windowQueries;
    assert(wq !== null, 'window queries recorded for defensivekv');
    const L = run.promptLength,
      n = L - window;
    const rows = window;
    const rowPos = run.captured.windowPositions.subarray(run.captured.windowPositions.length - rows);
    const logits = new Float32Array(rows * L);
    // one row's softmax and its pooling, reused for every row
    const row = new Float64Array(L);
    const pooled = new Float64Array(n);
    return wq.map((queries, l) => {
      const q = queries.subarray(queries.length - rows * H * d);
      const worst: Float64Array[] = [];
      const meanAttn: Float64Array[] = [];
      let windowMass = 0;
      for (let g = 0; g < Hkv; g++) {
        const head = run.cache.head(l, g);
        const keys = head.keyRows(0, L);
        const m = new Float64Array(n).fill(-Infinity);
        const mean = new Float64Array(n);
        for (let h = g * G; h < (g + 1) * G; h++) {
          k.sgemm(false, true, rows, L, d, 1 / Math.sqrt(d), q.subarray(h * d), H * d, keys, d, 0, logits, L);
          for (let r = 0; r < rows; r++) {
            const a = softmaxRow(logits.subarray(r * L, (r + 1) * L), head.positions, rowPos[r], row);
            let rowMass = 0;
            for (let j = 0; j < n; j++) {
              rowMass += a[j];
              mean[j] += a[j] / (G * rows);
            }
            windowMass += (1 - rowMass) / (H * rows);
            const p = pool1d(a, n, this.kernel, 'avg', pooled);
            let pooledMass = 0;
            for (let j = 0; j < n; j++) pooledMass += p[j];
            const scale = pooledMass > 0 ? rowMass / pooledMass : 0;
            for (let j = 0; j < n; j++) if (p[j] * scale > m[j]) m[j] = p[j] * scale;
          }
        }
        let avg = 0;
        for (let j = 0; j < n; j++) avg += m[j] / n;
        for (let j = 0; j < n; j++) if (m[j] < avg) m[j] = avg;
        worst.push(m);
        meanAttn.push(mean);
      }
      return { worst, meanAttn, windowMass };
    });
  }
}

interface LayerFloors {
  worst: Float64Array[];
  meanAttn: Float64Array[];
  windowMass: number;
}

/** softmax over the keys a row at `pos` may see (positions <= pos) into `out`; the others get 0. */
function softmaxRow(logits: Float32Array, positions: Int32Array, pos: number, out: Float64Array): Float64Array {
  out.fill(0, 0, logits.length);
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) if (positions[j] <= pos && logits[j] > max) max = logits[j];
  let sum = 0;
  for (let j = 0; j < logits.length; j++) {
    if (positions[j] <= pos) {
      out[j] = Math.exp(logits[j] - max);
      sum += out[j];
    }
  }
  for (let j = 0; j < logits.length; j++) out[j] /= sum;
  return out;
}

/**
 * The entries, best first by their share of the mean attention (ties: the later), before the share taken so
 * far first reaches `threshold`; at most `cap` of them.
 */
function massLeaders(attn: Float64Array, threshold: number, cap: number): number[] {
  let total = 0;
  for (const a of attn) total += a;
  const order = Array.from({ length: attn.length }, (_, j) => j).sort((a, b) => attn[b] - attn[a] || b - a);
  let cum = 0;
  let count = 0;
  for (let i = 0; i < order.length; i++) {
    cum += attn[order[i]] / total;
    if (cum >= threshold) {
      count = i;
      break;
    }
  }
  return order.slice(0, Math.max(0, Math.min(count, cap)));
}
