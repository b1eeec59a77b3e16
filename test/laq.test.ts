/**
 * LAQ and LAQ++ against a brute-force implementation of methods.md's definition, built on the float64
 * reference forward: stage 1 as a mask over the prompt keys, pseudo tokens decoded greedily under it, stage 2
 * scored with their queries (and the last w2 prompt queries) over every prompt key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModelConfig } from '../src/model/config.js';
import { prefillAndCompress } from '../src/generate/pipeline.js';
import { makePress, type PressOptions } from '../src/press/index.js';
import { LookaheadQueries } from '../src/press/queries/lookahead.js';
import type { ScorePress } from '../src/press/score-press.js';
import type { AttentionScorer } from '../src/press/scorers/attention.js';
import type { Press } from '../src/press/types.js';
import {
  assertPlanMatches,
  bfAttentionScores,
  bfTopK,
  bytesFor,
  prefillRun,
  promptTokens,
  tinyModel,
  withWindow,
  type BfQuery,
  type Harness,
} from './helpers/press-reference.js';
import { referenceForward, type ReferenceOutput } from './reference/llama-f64.js';

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

interface BfLaqOptions {
  budget: number;
  /** stage-1 window (snapkv / h2o) */
  window: number;
  stage1: 'snapkv' | 'h2o' | 'streaming';
  sinks: number;
  kernel: number;
  pool: 'max' | 'avg';
  gqa: 'mean' | 'max';
  lookahead: number;
  w2: number;
  referenceMask: boolean;
  eos: number[];
}

/** Stage-1 kept sets [layer][kvHead] from the float64 prefill, by the stage-1 method's definition. */
function bfStage1(cfg: ModelConfig, ref: ReferenceOutput, L: number, o: BfLaqOptions): Set<number>[][] {
  const B = o.budget;
  return ref.keys.map((ks, l) => {
    if (o.stage1 === 'streaming') {
      return Array.from(
        { length: cfg.numKvHeads },
        () =>
          new Set([...Array.from({ length: o.sinks }, (_, i) => i), ...Array.from({ length: B - o.sinks }, (_, i) => L - B + o.sinks + i)]),
      );
    }
    const rows: BfQuery[] =
      o.stage1 === 'h2o'
        ? ref.queries[l].slice(0, L).map((q, r) => ({ q, limit: r }))
        : Array.from({ length: o.window }, (_, i) => ({ q: ref.queries[l][L - o.window + i], limit: L - o.window + i }));
    const scores = bfAttentionScores(cfg, rows, ks.slice(0, L), {
      window: o.window,
      kernel: o.stage1 === 'h2o' ? 1 : o.kernel,
      pool: o.pool,
      gqa: o.gqa,
    });
    return scores.map((s) => new Set(withWindow(bfTopK(s, B - o.window), L, o.window)));
  });
}

/** The whole LAQ definition in float64: returns the plan, the stage-2 scores and the pseudo tokens. */
function bfLaq(h: Harness, tokens: Int32Array, o: BfLaqOptions): { plan: number[][][]; scores: number[][][]; pseudo: number[] } {
  const { cfg } = h;
  const w = h.model.weights;
  const L = tokens.length;
  const G = cfg.numHeads / cfg.numKvHeads;
  const ref = referenceForward(cfg, w, { tokens });
  const kept1 = bfStage1(cfg, ref, L, o);
  // pseudo tokens: greedy, each row after the prompt sees the stage-1 prompt entries and the pseudo rows
  const visible = (l: number, qh: number, qPos: number, kPos: number) => qPos < L || kPos >= L || kept1[l][Math.floor(qh / G)].has(kPos);
  const seq = Array.from(tokens);
  const pseudo: number[] = [];
  const pseudoQ: Float64Array[][] = ref.queries.map(() => []);
  let t = argmax(ref.logits[L - 1]);
  for (let i = 0; i < o.lookahead; i++) {
    seq.push(t);
    pseudo.push(t);
    const out = referenceForward(cfg, w, { tokens: seq, visible });
    out.queries.forEach((qs, l) => pseudoQ[l].push(qs[L + i]));
    if (i === o.lookahead - 1 || o.eos.includes(t)) break;
    t = argmax(out.logits[L + i]);
    if (o.eos.includes(t)) break;
  }
  const n = pseudo.length;
  const R = o.w2 + n;
  const scores = ref.queries.map((qs, l) => {
    const rows: BfQuery[] = [
      ...Array.from({ length: o.w2 }, (_, i) => ({ q: qs[L - o.w2 + i], limit: L - o.w2 + i })),
      ...pseudoQ[l].map((q) => ({ q, limit: L - 1 })),
    ];
    if (o.referenceMask)
      rows.forEach((r, i) => {
        r.limit = L - R + i;
      });
    return bfAttentionScores(cfg, rows, ref.keys[l].slice(0, L), { window: o.w2, kernel: o.kernel, pool: o.pool, gqa: o.gqa });
  });
  const plan = scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, o.budget - o.w2), L, o.w2)));
  return { plan, scores, pseudo };
}

function lookaheadOf(press: Press): LookaheadQueries {
  const scorer = (press as ScorePress).scorer as AttentionScorer;
  const src = scorer.o.sources.find((s) => s instanceof LookaheadQueries);
  assert.ok(src instanceof LookaheadQueries);
  return src;
}

const DEFAULTS: BfLaqOptions = {
  budget: 14,
  window: 6,
  stage1: 'snapkv',
  sinks: 4,
  kernel: 7,
  pool: 'max',
  gqa: 'mean',
  lookahead: 8,
  w2: 0,
  referenceMask: false,
  eos: [],
};

async function checkLaq(
  h: Harness,
  name: 'laq' | 'laq++',
  options: PressOptions,
  bf: Partial<BfLaqOptions>,
  eos?: number[],
): Promise<number[]> {
  const tokens = promptTokens(36, 11);
  const press = makePress(name, options);
  const { run } = prefillRun(h, tokens, press);
  if (eos) run.eosTokenIds = eos;
  const plan = await press.compress(run);
  const o = { ...DEFAULTS, ...bf, eos: eos ?? h.cfg.eosTokenIds };
  const e = bfLaq(h, tokens, o);
  assert.deepEqual(lookaheadOf(press).lastTrace?.tokens, e.pseudo, 'pseudo tokens');
  assertPlanMatches(plan, e.plan, e.scores, `${name} ${JSON.stringify(options)}`);
  return e.pseudo;
}

describe('LAQ against brute force', () => {
  const g2 = tinyModel({ num_hidden_layers: 2 }, 5, 0.15);
  const g3 = tinyModel({ num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2 }, 6, 0.15);
  const g1 = tinyModel({ num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2 }, 7, 0.15);

  it('laq: pseudo queries only, no window (GQA group of 2)', async () => {
    await checkLaq(g2, 'laq', { budget: 14, window: 6 }, {});
  });

  it('laq++: the last w2 prompt queries plus the pseudo queries (GQA group of 3)', async () => {
    await checkLaq(g3, 'laq++', { budget: 14, window: 6, w2: 4, kernel: 5 }, { w2: 4, kernel: 5 });
  });

  it('laq++ with avg pooling and max over the group (GQA group of 1)', async () => {
    await checkLaq(
      g1,
      'laq++',
      { budget: 12, window: 4, w2: 3, pool: 'avg', gqa: 'max', lookahead: 5 },
      { budget: 12, window: 4, w2: 3, pool: 'avg', gqa: 'max', lookahead: 5 },
    );
  });

  it('stage 1 by h2o and by streaming', async () => {
    await checkLaq(g2, 'laq', { budget: 14, window: 6, stage1: 'h2o' }, { stage1: 'h2o' });
    await checkLaq(
      g3,
      'laq++',
      { budget: 14, stage1: 'streaming', sinks: 2, w2: 2, lookahead: 4 },
      { stage1: 'streaming', sinks: 2, w2: 2, lookahead: 4 },
    );
  });

  it("the reference code's mask hides the last prompt keys from the pseudo queries", async () => {
    await checkLaq(g2, 'laq++', { budget: 14, window: 6, w2: 4, referenceMask: true }, { w2: 4, referenceMask: true });
  });

  it('stops the lookahead at an end-of-sequence token', async () => {
    const pseudo = await checkLaq(g2, 'laq', { budget: 14, window: 6 }, {}, [9999]);
    assert.equal(pseudo.length, 8);
    // the first token chosen during the lookahead that differs from those before it becomes the end token
    const stopAt = pseudo.findIndex((t, i) => i > 0 && !pseudo.slice(0, i).includes(t));
    assert.ok(stopAt > 0, 'the lookahead chose a new token');
    const short = await checkLaq(g2, 'laq', { budget: 14, window: 6 }, {}, [pseudo[stopAt]]);
    assert.deepEqual(short, pseudo.slice(0, stopAt));
    // the prefill's argmax itself is an end token: fed alone
    const one = await checkLaq(g2, 'laq', { budget: 14, window: 6 }, {}, [pseudo[0]]);
    assert.deepEqual(one, [pseudo[0]]);
  });

  it('keeps everything, without a lookahead, when the prompt is no longer than the budget', async () => {
    const press = makePress('laq++', { budget: 36, window: 6 });
    const { run } = prefillRun(g2, promptTokens(36, 11), press);
    const plan = await press.compress(run);
    for (const layer of plan)
      for (const kept of layer)
        assert.deepEqual(
          Array.from(kept),
          Array.from({ length: 36 }, (_, i) => i),
        );
    assert.equal(lookaheadOf(press).lastTrace, null);
  });

  it('frees the full cache, the stage-1 cache and every pseudo entry: bytes after eviction are the budget', async () => {
    for (const name of ['laq', 'laq++'] as const) {
      const press = makePress(name, { budget: 10, window: 4, w2: name === 'laq++' ? 3 : undefined });
      const ctx = await prefillAndCompress(g3.model, promptTokens(36, 2), press);
      assert.equal(ctx.fullCacheBytes, bytesFor(g3.cfg, 36, 'f16'));
      assert.equal(ctx.cacheBytes, bytesFor(g3.cfg, 10, 'f16'));
      assert.equal(ctx.cache.allocatedBytes, bytesFor(g3.cfg, 10, 'f16'));
      assert.equal(ctx.nextPosition, 36);
      for (const layer of ctx.cache.layers)
        for (const head of layer) {
          assert.equal(head.length, 10);
          assert.ok(head.positions[head.length - 1] < 36, 'no pseudo-token entry');
        }
      assert.ok(lookaheadOf(press).lastTrace!.tokens.length >= 1);
    }
  });
});
