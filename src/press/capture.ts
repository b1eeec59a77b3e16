import type { KvCache } from '../cache/kv-cache.js';
import { assert } from '../errors.js';
import type { Kernels } from '../kernels/types.js';
import { ropeTables, type ModelConfig } from '../model/config.js';
import type { LayerView, Observer } from '../model/types.js';
import { accumulateAttention, type HeadKeys } from './attention-mass.js';
import type { Captured, CaptureRequest, QueryStats } from './types.js';

/** Merge the requests of several presses or sources (the largest window wins). */
export function mergeCaptures(...requests: CaptureRequest[]): CaptureRequest {
  const out: CaptureRequest = {};
  for (const r of requests) {
    if (r.windowQueries !== undefined && r.windowQueries > 0) out.windowQueries = Math.max(out.windowQueries ?? 0, r.windowQueries);
    if (r.columnSums) out.columnSums = true;
    if (r.queryStats) {
      assert(out.queryStats === undefined || out.queryStats.sinks === r.queryStats.sinks, 'one sink count for query statistics');
      out.queryStats = { sinks: r.queryStats.sinks };
    }
  }
  return out;
}

/**
 * Records, during the prompt prefill, what the presses asked for: the last window's queries, the column sums
 * of the causal attention (computed blockwise as each chunk arrives, so the prefill stays single-pass; indexed
 * by position, so a cache with evicted entries adds to the entries it still holds) and pre-RoPE query
 * statistics. Positions `start .. start + promptLength - 1` are the prompt. `carry` (a chunked compression's
 * previous chunk) starts the column sums and statistics where that chunk left them.
 */
export class PrefillRecorder {
  private readonly windowRows: number;
  private readonly windowQueries: Float32Array[] | null;
  private readonly columnSums: Float64Array[] | null;
  private readonly stats: QueryStats[] | null;
  private readonly statsSinks: number;
  private unrotated: Float32Array = new Float32Array(0);
  private cosTable: Float32Array = new Float32Array(0);
  private negSinTable: Float32Array = new Float32Array(0);
  private tableLength = 0;

  constructor(
    private readonly k: Kernels,
    private readonly config: ModelConfig,
    private readonly cache: KvCache,
    private readonly start: number,
    private readonly promptLength: number,
    request: CaptureRequest,
    carry: Captured | null = null,
  ) {
    const { numLayers: NL, numHeads: H, headDim: d } = config;
    this.windowRows = Math.min(request.windowQueries ?? 0, promptLength);
    this.windowQueries = this.windowRows > 0 ? Array.from({ length: NL }, () => new Float32Array(this.windowRows * H * d)) : null;
    this.columnSums = request.columnSums ? Array.from({ length: NL }, () => new Float64Array(H * promptLength)) : null;
    if (this.columnSums && carry?.columnSums) {
      const before = carry.columnSums[0].length / H;
      this.columnSums.forEach((sums, l) => {
        for (let h = 0; h < H; h++) sums.set(carry.columnSums![l].subarray(h * before, (h + 1) * before), h * promptLength);
      });
    }
    this.statsSinks = request.queryStats?.sinks ?? 0;
    this.stats = request.queryStats
      ? Array.from({ length: NL }, (_, l) => {
          const c = carry?.queryStats?.[l];
          return c
            ? { count: c.count, sum: c.sum.slice(), outer: c.outer.slice() }
            : { count: 0, sum: new Float64Array(H * d), outer: new Float64Array(H * d * d) };
        })
      : null;
  }

  /** True when nothing needs recording (the prefill runs without an observer). */
  get idle(): boolean {
    return this.windowQueries === null && this.columnSums === null && this.stats === null;
  }

  readonly observer: Observer = (view: LayerView) => {
    if (this.windowQueries) this.recordWindow(view);
    if (this.columnSums) this.recordColumnSums(view);
    if (this.stats) this.recordStats(view);
  };

  result(): Captured {
    const windowPositions = new Int32Array(this.windowRows);
    const first = this.start + this.promptLength - this.windowRows;
    for (let i = 0; i < this.windowRows; i++) windowPositions[i] = first + i;
    return { windowQueries: this.windowQueries, windowPositions, columnSums: this.columnSums, queryStats: this.stats };
  }

  private recordWindow(view: LayerView): void {
    const rowSize = this.config.numHeads * this.config.headDim;
    const first = this.start + this.promptLength - this.windowRows;
    const dst = this.windowQueries![view.layer];
    for (let r = 0; r < view.positions.length; r++) {
      const p = view.positions[r];
      if (p < first || p >= this.start + this.promptLength) continue;
      dst.set(view.queries.subarray(r * rowSize, (r + 1) * rowSize), (p - first) * rowSize);
    }
  }

  private recordColumnSums(view: LayerView): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    const G = H / Hkv;
    const L = this.promptLength;
    const rows = view.positions.length;
    const last = view.positions[rows - 1];
    const sums = this.columnSums![view.layer];
    for (let h = 0; h < Hkv; h++) {
      const head = this.cache.head(view.layer, h);
      const keys: HeadKeys =
        head.length > 0 && head.positions[head.length - 1] >= last
          ? { keys: head.keyRows(), positions: head.positions, n: head.length }
          : withChunk(head.keyRows(), head.positions, head.length, view, h, Hkv, d);
      // only the prompt's keys are columns here
      let n = 0;
      while (n < keys.n && keys.positions[n] < this.start + L) n++;
      // a full prompt cache holds position start + j at entry j: the sums are its columns; else add by position
      const direct = n === 0 || (keys.positions[0] === this.start && keys.positions[n - 1] === this.start + n - 1);
      const out: Float64Array[] = [];
      for (let g = 0; g < G; g++) out.push(direct ? sums.subarray((h * G + g) * L, (h * G + g + 1) * L) : new Float64Array(n));
      accumulateAttention(
        this.k,
        { queries: view.queries, rows, visibleUpTo: view.positions },
        H,
        d,
        h * G,
        G,
        { keys: keys.keys, positions: keys.positions, n },
        out,
      );
      if (!direct)
        out.forEach((mass, g) => {
          const row = (h * G + g) * L - this.start;
          for (let j = 0; j < n; j++) sums[row + keys.positions[j]] += mass[j];
        });
    }
  }

  private recordStats(view: LayerView): void {
    const { numHeads: H, headDim: d } = this.config;
    const rows = view.positions.length;
    let r0 = 0;
    while (r0 < rows && view.positions[r0] < this.start + this.statsSinks) r0++;
    if (r0 === rows) return;
    const m = rows - r0;
    const rowSize = H * d;
    this.ensureTables(view.positions[rows - 1] + 1);
    if (this.unrotated.length < m * rowSize) this.unrotated = new Float32Array(m * rowSize);
    const q = this.unrotated.subarray(0, m * rowSize);
    q.set(view.queries.subarray(r0 * rowSize, rows * rowSize));
    // RoPE is a rotation: rotating by -angle gives back the pre-RoPE query
    this.k.rope(q, m, H, d, view.positions.subarray(r0), this.cosTable, this.negSinTable);
    const st = this.stats![view.layer];
    st.count += m;
    const outer = new Float32Array(d * d);
    for (let h = 0; h < H; h++) {
      const base = h * d;
      for (let r = 0; r < m; r++) {
        const off = r * rowSize + base;
        for (let i = 0; i < d; i++) st.sum[base + i] += q[off + i];
      }
      const qh = q.subarray(base);
      this.k.sgemm(true, false, d, d, m, 1, qh, rowSize, qh, rowSize, 0, outer, d);
      const o = h * d * d;
      for (let i = 0; i < d * d; i++) st.outer[o + i] += outer[i];
    }
  }

  private ensureTables(positions: number): void {
    if (positions <= this.tableLength) return;
    const len = Math.max(positions, 2 * this.tableLength);
    const t = ropeTables(this.config, len);
    this.cosTable = t.cos;
    this.negSinTable = t.sin.map((x) => -x);
    this.tableLength = len;
  }
}

/** The head's stored keys followed by this chunk's keys (for an engine that calls the observer before appending). */
function withChunk(
  keys: Float32Array,
  positions: Int32Array,
  length: number,
  view: LayerView,
  h: number,
  Hkv: number,
  d: number,
): HeadKeys {
  const rows = view.positions.length;
  const k = new Float32Array((length + rows) * d);
  const p = new Int32Array(length + rows);
  k.set(keys.subarray(0, length * d));
  p.set(positions.subarray(0, length));
  for (let r = 0; r < rows; r++) {
    k.set(view.keys.subarray((r * Hkv + h) * d, (r * Hkv + h + 1) * d), (length + r) * d);
    p[length + r] = view.positions[r];
  }
  return { keys: k, positions: p, n: length + rows };
}
