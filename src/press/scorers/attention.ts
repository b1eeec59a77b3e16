import { assert } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import { accumulateAttention, type QueryRows } from '../attention-mass.js';
import { mergeCaptures } from '../capture.js';
import { reduceHeads, type GqaReduce } from '../gqa.js';
import { pool1d, type PoolKind } from '../pool.js';
import { sharedResult } from '../shared-work.js';
import type { CaptureRequest, HeadScores, PrefillRun, QueryBlock, QuerySource, Scorer } from '../types.js';

/**
 * How query rows see the prompt keys. `positions`: causal rows see keys at positions <= their own, the others
 * every prompt key. `aligned`: LAQ's reference code, SnapKV's causal mask laid over the last R keys for the R
 * rows (row i sees keys up to L - R + i), whatever the rows' real positions.
 */
export type MaskKind = 'positions' | 'aligned';

export interface AttentionScorerOptions {
  name: string;
  sources: QuerySource[];
  /** the last `window` prompt entries are kept, and pooling runs over the others only */
  window: number;
  kernel: number;
  pool: PoolKind;
  /** reduce over the GQA group, or `layer`: the mean over every query head of the layer (TOVA) */
  gqa: GqaReduce | 'layer';
  mask?: MaskKind;
}

/** The attention-based scoring of methods.md: softmax attention of the sources' queries, summed, pooled, reduced. */
export class AttentionScorer implements Scorer {
  readonly name: string;
  readonly window: number;

  constructor(readonly o: AttentionScorerOptions) {
    assert(o.sources.length > 0, 'at least one query source');
    this.name = o.name;
    this.window = o.window;
  }

  capture(promptLength: number): CaptureRequest {
    return mergeCaptures(...this.o.sources.map((s) => s.capture(promptLength)));
  }

  async score(run: PrefillRun, window: number, budget: number): Promise<HeadScores> {
    const keys = this.o.sources.map((s) => s.shareKey);
    if (keys.some((k) => k === undefined)) return this.compute(run, window, budget);
    // no source depends on the budget: the grid's budgets and the methods built on these scores share them
    const { kernel, pool, gqa, mask } = this.o;
    const key = JSON.stringify(['attention', keys, window, kernel, pool, gqa, mask ?? 'positions']);
    const scores = await sharedResult(run, key, () => this.compute(run, window, budget));
    return scores.map((layer) => layer.map((head) => head.slice()));
  }

  private async compute(run: PrefillRun, window: number, budget: number): Promise<HeadScores> {
    const perSource: QueryBlock[][] = [];
    for (const s of this.o.sources) perSource.push(await s.queries(run, budget));
    const cfg = run.model.config;
    const { numLayers: NL, numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
    const G = H / Hkv;
    const k = kernels();
    const out: HeadScores = [];
    for (let l = 0; l < NL; l++) {
      const rows = this.rowsOf(
        perSource.map((b) => b[l]),
        run,
        H * d,
      );
      const pooledAll: Float64Array[] = [];
      const layerScores: Float64Array[] = [];
      for (let h = 0; h < Hkv; h++) {
        const head = run.cache.head(l, h);
        const n = head.length;
        const candidates = n - window;
        assert(candidates >= 0, 'window fits in the cache');
        const mass = Array.from({ length: G }, () => new Float64Array(n));
        accumulateAttention(k, rows, H, d, h * G, G, { keys: head.keyRows(0, n), positions: head.positions, n }, mass);
        const pooled = mass.map((m) => pool1d(m, candidates, this.o.kernel, this.o.pool));
        if (this.o.gqa === 'layer') pooledAll.push(...pooled);
        else layerScores.push(reduceHeads(pooled, this.o.gqa));
      }
      if (this.o.gqa === 'layer') {
        const mean = reduceHeads(pooledAll, 'mean');
        for (let h = 0; h < Hkv; h++) layerScores.push(mean);
      }
      out.push(layerScores);
    }
    return out;
  }

  /** The rows of every block of one layer, one after the other, with the last key position each may see. */
  private rowsOf(blocks: QueryBlock[], run: PrefillRun, rowSize: number): QueryRows {
    let total = 0;
    for (const b of blocks) total += b.positions.length;
    const queries = new Float32Array(total * rowSize);
    const visibleUpTo = new Int32Array(total);
    const lastPrompt = run.startPosition + run.promptLength - 1;
    let r = 0;
    for (const b of blocks) {
      const m = b.positions.length;
      assert(b.queries.length === m * rowSize, 'query block shape [n, H, d]');
      queries.set(b.queries, r * rowSize);
      for (let i = 0; i < m; i++) {
        visibleUpTo[r + i] = b.visibleUpTo ? b.visibleUpTo[i] : b.causal ? Math.min(b.positions[i], lastPrompt) : lastPrompt;
      }
      r += m;
    }
    if (this.o.mask === 'aligned') for (let i = 0; i < total; i++) visibleUpTo[i] = lastPrompt - total + 1 + i;
    return { queries, rows: total, visibleUpTo };
  }
}
