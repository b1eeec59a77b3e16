/**
 * Each method against a brute-force implementation of its definition (methods.md) on small random models:
 * GQA groups of one, two and three query heads, pooling kinds, prompts no longer than the budget.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModelConfig } from '../src/model/config.js';
import { prefill } from '../src/generate/pipeline.js';
import { makePress, type PressOptions } from '../src/press/index.js';
import { SharedWork } from '../src/press/shared-work.js';
import { REPEAT_FIRST, REPEAT_NEXT } from '../src/press/scorers/reconstruction.js';
import { Rng } from '../src/util/rng.js';
import {
  assertPlanMatches,
  bfAttentionScores,
  bfPool,
  bfReduce,
  bfTopK,
  prefillRun,
  promptTokens,
  tinyModel,
  withWindow,
  type BfQuery,
  type Harness,
  type Recorded,
} from './helpers/press-reference.js';

const GROUPS: { name: string; overrides: Record<string, unknown> }[] = [
  { name: 'GQA group of 1', overrides: { num_attention_heads: 4, num_key_value_heads: 4, num_hidden_layers: 3 } },
  { name: 'GQA group of 2', overrides: { num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 3 } },
  { name: 'GQA group of 3', overrides: { num_attention_heads: 6, num_key_value_heads: 2, num_hidden_layers: 3 } },
];

const L = 40;

type Expected = { plan: number[][][]; scores: number[][][] | null };

async function check(
  h: Harness,
  name: string,
  options: PressOptions,
  expected: (rec: Recorded, cfg: ModelConfig) => Expected,
  tokens = promptTokens(L, 7),
): Promise<void> {
  const press = makePress(name, options);
  const { run, rec } = prefillRun(h, tokens, press);
  const plan = await press.compress(run);
  const e = expected(rec, h.cfg);
  assertPlanMatches(plan, e.plan, e.scores, `${name} ${JSON.stringify(options)}`);
}

function windowRows(rec: Recorded, l: number, w: number): BfQuery[] {
  const n = rec.q[l].length;
  return Array.from({ length: w }, (_, i) => ({ q: rec.q[l][n - w + i], limit: n - w + i }));
}

/** SnapKV, per layer: last-w queries, causal; pooled over the L - w candidates; top-(B - w) plus the window. */
function bfSnapkv(B: number, w: number, kernel: number, pool: 'max' | 'avg', gqa: 'mean' | 'max', budgets?: number[]) {
  return (rec: Recorded, cfg: ModelConfig): Expected => {
    const scores = rec.q.map((_, l) => bfAttentionScores(cfg, windowRows(rec, l, w), rec.k[l], { window: w, kernel, pool, gqa }));
    const plan = scores.map((layer, l) => layer.map((s) => withWindow(bfTopK(s, budgets ? budgets[l] : B - w), rec.k[l].length, w)));
    return { plan, scores };
  };
}

/** PyramidKV's per-layer candidate budgets, from the formula, with the real values rounded down and the remainder spread by largest fraction. */
function bfPyramid(B: number, w: number, Lp: number, NL: number): number[] {
  const C = B - w;
  let min = C / 20;
  let max = 2 * C - min;
  if (max >= Lp - w) {
    max = Lp - w;
    min = 2 * C - max;
  }
  const real = Array.from({ length: NL }, (_, l) => max - (l * (max - min)) / (NL - 1));
  const out = real.map((x) => Math.floor(x + 1e-9));
  let left = NL * C - out.reduce((a, b) => a + b, 0);
  const order = real.map((x, l) => [x - Math.floor(x + 1e-9), l]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, l] of order)
    if (left > 0) {
      out[l]++;
      left--;
    }
  return out;
}

describe('press methods against brute force', () => {
  for (const g of GROUPS) {
    describe(g.name, () => {
      const h = tinyModel(g.overrides);

      it('snapkv (max pooling, mean over the group)', async () => {
        await check(h, 'snapkv', { budget: 14, window: 4, kernel: 5 }, bfSnapkv(14, 4, 5, 'max', 'mean'));
      });

      it('snapkv (avg pooling, max over the group, even kernel)', async () => {
        await check(h, 'snapkv', { budget: 12, window: 6, kernel: 4, pool: 'avg', gqa: 'max' }, bfSnapkv(12, 6, 4, 'avg', 'max'));
      });

      it('snapkv with a ratio', async () => {
        // keep round(40 * 0.7) = 28
        await check(h, 'snapkv', { ratio: 0.3, window: 8, kernel: 7 }, bfSnapkv(28, 8, 7, 'max', 'mean'));
      });

      it('pyramidkv: layer budgets fall linearly with the same total', async () => {
        const budgets = bfPyramid(16, 4, L, 3);
        assert.equal(
          budgets.reduce((a, b) => a + b, 0),
          3 * 12,
        );
        assert.ok(budgets[0] > budgets[2]);
        await check(h, 'pyramidkv', { budget: 16, window: 4, kernel: 3 }, bfSnapkv(16, 4, 3, 'max', 'mean', budgets));
      });

      it('pyramidkv when max reaches L - w', async () => {
        const budgets = bfPyramid(30, 4, L, 3);
        assert.equal(budgets[0], L - 4);
        await check(h, 'pyramidkv', { budget: 30, window: 4, kernel: 3 }, bfSnapkv(30, 4, 3, 'max', 'mean', budgets));
      });

      it('h2o: all prompt queries, causal, no pooling, recent window kept', async () => {
        await check(h, 'h2o', { budget: 12, window: 3 }, (rec, cfg) => {
          const scores = rec.q.map((qs, l) =>
            bfAttentionScores(
              cfg,
              qs.map((q, r) => ({ q, limit: r })),
              rec.k[l],
              { window: 3, kernel: 1, pool: 'max', gqa: 'mean' },
            ),
          );
          return { plan: scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, 9), L, 3))), scores };
        });
      });

      it('h2o with max over the group', async () => {
        await check(h, 'h2o', { budget: 10, window: 2, gqa: 'max' }, (rec, cfg) => {
          const scores = rec.q.map((qs, l) =>
            bfAttentionScores(
              cfg,
              qs.map((q, r) => ({ q, limit: r })),
              rec.k[l],
              { window: 2, kernel: 1, pool: 'max', gqa: 'max' },
            ),
          );
          return { plan: scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, 8), L, 2))), scores };
        });
      });

      it('tova: last query, averaged over every head of the layer, one set per layer', async () => {
        await check(h, 'tova', { budget: 11 }, (rec, cfg) => {
          const scores = rec.q.map((_, l) =>
            bfAttentionScores(cfg, windowRows(rec, l, 1), rec.k[l], { window: 1, kernel: 1, pool: 'max', gqa: 'layer' }),
          );
          const plan = scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, 10), L, 1)));
          for (const layer of plan) for (const kept of layer) assert.deepEqual(kept, layer[0]);
          return { plan, scores };
        });
      });

      it('adakv around snapkv: per-head safeguard, the rest shared across the layer', async () => {
        const B = 14,
          w = 4,
          C = B - w,
          alpha = 0.2;
        const press = makePress('adakv', { budget: B, window: w, kernel: 3 });
        const { run, rec } = prefillRun(h, promptTokens(L, 7), press);
        const plan = await press.compress(run);
        const scores = rec.q.map((_, l) =>
          bfAttentionScores(h.cfg, windowRows(rec, l, w), rec.k[l], { window: w, kernel: 3, pool: 'max', gqa: 'mean' }),
        );
        const expected = scores.map((layer) => {
          const safe = Math.floor(alpha * C);
          const kept = layer.map((s) => new Set(bfTopK(s, safe)));
          const rest: [number, number, number][] = [];
          layer.forEach((s, kv) =>
            s.forEach((v, j) => {
              if (!kept[kv].has(j)) rest.push([v, j, kv]);
            }),
          );
          rest.sort((a, b) => b[0] - a[0] || b[1] - a[1] || a[2] - b[2]);
          for (const [, j, kv] of rest.slice(0, layer.length * (C - safe))) kept[kv].add(j);
          return kept.map((s) =>
            withWindow(
              [...s].sort((a, b) => a - b),
              L,
              w,
            ),
          );
        });
        // lengths may differ per head, but the layer total is Hkv x B
        for (const layer of plan)
          assert.equal(
            layer.reduce((a, k) => a + k.length, 0),
            h.cfg.numKvHeads * B,
          );
        for (let l = 0; l < plan.length; l++)
          for (let kv = 0; kv < plan[l].length; kv++) {
            assert.deepEqual(Array.from(plan[l][kv]), expected[l][kv], `layer ${l} head ${kv}`);
          }
      });

      it('chunkkv around snapkv and knorm: whole chunks by their mean score summed over the heads', async () => {
        // 36 candidates in chunks of 5: seven whole ones and a last one of 1, which fits where a whole one no longer does
        const B = 18,
          w = 4,
          chunk = 5;
        const chunks = (layer: number[][], C: number, size = chunk): number[] => {
          const n = layer[0].length;
          const spans: { from: number; to: number; mean: number }[] = [];
          for (let from = 0; from < n; from += size) {
            const to = Math.min(n, from + size);
            let s = 0;
            for (let j = from; j < to; j++) for (const head of layer) s += head[j];
            spans.push({ from, to, mean: s / (to - from) });
          }
          const kept: number[] = [];
          let left = C;
          const done = new Set<number>();
          while (done.size < spans.length) {
            let best = -1;
            spans.forEach((c, i) => {
              if (!done.has(i) && (best < 0 || c.mean >= spans[best].mean)) best = i;
            });
            done.add(best);
            const c = spans[best];
            if (c.to - c.from <= left) {
              for (let j = c.from; j < c.to; j++) kept.push(j);
              left -= c.to - c.from;
            }
          }
          return kept.sort((a, b) => a - b);
        };
        await check(h, 'chunkkv', { budget: B, window: w, kernel: 3, chunk }, (rec, cfg) => {
          const scores = rec.q.map((_, l) =>
            bfAttentionScores(cfg, windowRows(rec, l, w), rec.k[l], { window: w, kernel: 3, pool: 'max', gqa: 'mean' }),
          );
          return {
            plan: scores.map((layer) => {
              const k = withWindow(chunks(layer, B - w), L, w);
              return layer.map(() => k);
            }),
            scores,
          };
        });
        await check(h, 'chunkkv', { budget: 12, scorer: 'knorm', chunk: 4 }, (rec, cfg) => {
          const d = cfg.headDim;
          const scores = rec.k.map((ks) =>
            Array.from({ length: cfg.numKvHeads }, (_, kv) =>
              ks.map((k) => -Math.sqrt(Array.from(k.subarray(kv * d, (kv + 1) * d)).reduce((a, x) => a + x * x, 0))),
            ),
          );
          return {
            plan: scores.map((layer) => {
              const k = chunks(layer, 12, 4);
              return layer.map(() => k);
            }),
            scores,
          };
        });
      });

      it('criticalkv around snapkv and h2o: half the slots by the scores, the rest by them times ||W_o v||_1', async () => {
        const eps = 1e-4;
        /** mean over the group's query heads of the L1 norm of each value through that head's W_o columns */
        const norms = (cfg: ModelConfig, l: number, kv: number, vs: Float64Array[], n: number): number[] => {
          const { headDim: d, hiddenSize: hid, numHeads: H } = cfg;
          const G = H / cfg.numKvHeads;
          const wo = h.model.weights.layers[l].o as Float32Array;
          return Array.from({ length: n }, (_, j) => {
            let total = 0;
            for (let g = 0; g < G; g++) {
              const qh = kv * G + g;
              for (let r = 0; r < hid; r++) {
                let y = 0;
                for (let i = 0; i < d; i++) y += wo[r * H * d + qh * d + i] * vs[j][kv * d + i];
                total += Math.abs(y);
              }
            }
            return total / G;
          });
        };
        const critical =
          (B: number, w: number, first: number, raw: (rec: Recorded, cfg: ModelConfig) => number[][][]) =>
          (rec: Recorded, cfg: ModelConfig): Expected => {
            const base = raw(rec, cfg);
            const C = B - w;
            const scores = base.map((layer, l) =>
              layer.map((s, kv) => {
                const nv = norms(cfg, l, kv, rec.v[l], s.length);
                const out = s.map((x, j) => (x + eps) * nv[j]);
                for (const j of bfTopK(s, Math.floor(C * first))) out[j] = Infinity;
                return out;
              }),
            );
            return { plan: scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, C), L, w))), scores: null };
          };
        const snap = (rec: Recorded, cfg: ModelConfig) =>
          rec.q.map((_, l) => bfAttentionScores(cfg, windowRows(rec, l, 4), rec.k[l], { window: 4, kernel: 3, pool: 'max', gqa: 'mean' }));
        await check(h, 'criticalkv', { budget: 16, window: 4, kernel: 3 }, critical(16, 4, 0.5, snap));
        await check(h, 'criticalkv', { budget: 16, window: 4, kernel: 3, firstStage: 0.25 }, critical(16, 4, 0.25, snap));
        const h2oScores = (rec: Recorded, cfg: ModelConfig) =>
          rec.q.map((qs, l) =>
            bfAttentionScores(
              cfg,
              qs.map((q, r) => ({ q, limit: r })),
              rec.k[l],
              { window: 3, kernel: 1, pool: 'max', gqa: 'mean' },
            ),
          );
        await check(h, 'criticalkv', { budget: 12, scorer: 'h2o', window: 3 }, critical(12, 3, 0.5, h2oScores));
      });

      it('defensivekv and layer-defensivekv: worst case floored at the mean, value-norm shares, mass leaders first, shared slots', async () => {
        const { headDim: d, numHeads: H, numKvHeads: Hkv, numLayers: NL, hiddenSize: hid } = h.cfg;
        const G = H / Hkv;
        /** per layer and KV head, DefensiveKV's candidate scores as methods.md defines them */
        const defensive = (rec: Recorded, w: number, kernel: number, mass: number, C: number): number[][][] =>
          rec.q.map((qs, l) => {
            const n = L - w;
            const attn = (qh: number, r: number): number[] => {
              const pos = L - w + r,
                kv = Math.floor(qh / G);
              const logit = Array.from({ length: pos + 1 }, (_, j) => {
                let dot = 0;
                for (let i = 0; i < d; i++) dot += qs[pos][qh * d + i] * rec.k[l][j][kv * d + i];
                return dot / Math.sqrt(d);
              });
              const mx = Math.max(...logit);
              const e = logit.map((x) => Math.exp(x - mx));
              const z = e.reduce((a, b) => a + b, 0);
              return e.map((x) => x / z);
            };
            let windowMass = 0;
            const worst: number[][] = [],
              mean: number[][] = [];
            for (let kv = 0; kv < Hkv; kv++) {
              const m = new Array<number>(n).fill(-Infinity),
                a = new Array<number>(n).fill(0);
              for (let qh = kv * G; qh < (kv + 1) * G; qh++) {
                for (let r = 0; r < w; r++) {
                  const row = attn(qh, r);
                  const cand = row.slice(0, n);
                  const rowMass = cand.reduce((x, y) => x + y, 0);
                  windowMass += row.slice(n).reduce((x, y) => x + y, 0) / (H * w);
                  cand.forEach((x, j) => {
                    a[j] += x / (G * w);
                  });
                  const p = bfPool(cand, n, kernel, 'avg');
                  const pm = p.reduce((x, y) => x + y, 0);
                  p.forEach((x, j) => {
                    m[j] = Math.max(m[j], (x * rowMass) / pm);
                  });
                }
              }
              const avg = m.reduce((x, y) => x + y, 0) / n;
              worst.push(m.map((x) => Math.max(x, avg)));
              mean.push(a);
            }
            const norm = (kv: number, j: number): number => {
              let t = 0;
              for (let qh = kv * G; qh < (kv + 1) * G; qh++) {
                for (let o = 0; o < hid; o++) {
                  let y = 0;
                  for (let i = 0; i < d; i++)
                    y += (h.model.weights.layers[l].o as Float32Array)[o * H * d + qh * d + i] * rec.v[l][j][kv * d + i];
                  t += Math.abs(y);
                }
              }
              return t / G;
            };
            const norms = Array.from({ length: Hkv }, (_, kv) => Array.from({ length: n }, (_, j) => norm(kv, j)));
            return worst.map((s, kv) => {
              const out = s.map((x, j) => (x * norms[kv][j]) / norms.reduce((t, nk) => t + nk[j], 0));
              const total = mean[kv].reduce((x, y) => x + y, 0);
              const order = mean[kv].map((_, j) => j).sort((x, y) => mean[kv][y] - mean[kv][x] || y - x);
              let cum = 0,
                count = 0;
              for (let i = 0; i < order.length; i++) {
                cum += mean[kv][order[i]] / total;
                if (cum >= mass - windowMass) {
                  count = i;
                  break;
                }
              }
              for (const j of order.slice(0, Math.min(count, C))) out[j] = Infinity;
              return out;
            });
          });
        /** the best (heads x C) of the flattened scores, ties toward the later layer, head and position */
        const share = (groups: number[][][], C: number): number[][][] => {
          const all: [number, number, number, number][] = [];
          groups.forEach((layer, l) => layer.forEach((s, kv) => s.forEach((x, j) => all.push([x, l, kv, j]))));
          all.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2] || b[3] - a[3]);
          const kept = groups.map((layer) => layer.map(() => [] as number[]));
          for (const [, l, kv, j] of all.slice(0, groups.length * Hkv * C)) kept[l][kv].push(j);
          return kept.map((layer) => layer.map((k) => k.sort((a, b) => a - b)));
        };
        const w = 6;
        // a large budget with a small mass reaches entries below the mean, where the floor decides
        for (const [name, mass, B] of [
          ['defensivekv', 0.9, 16],
          ['defensivekv', 0.2, 30],
          ['layer-defensivekv', 0.5, 16],
        ] as const) {
          const C = B - w;
          const press = makePress(name, { budget: B, window: w, kernel: 3, mass });
          const { run, rec } = prefillRun(h, promptTokens(L, 7), press);
          const plan = await press.compress(run);
          const scores = defensive(rec, w, 3, mass, C);
          const kept = name === 'defensivekv' ? scores.flatMap((layer) => share([layer], C)) : share(scores, C);
          assert.equal(plan.length, NL);
          let total = 0;
          for (let l = 0; l < NL; l++)
            for (let kv = 0; kv < Hkv; kv++) {
              total += plan[l][kv].length;
              assert.deepEqual(Array.from(plan[l][kv]), withWindow(kept[l][kv], L, w), `${name} layer ${l} head ${kv}`);
            }
          assert.equal(total, NL * Hkv * B, `${name}: the whole budget is used`);
        }
      });

      it('kvzip: the most a reconstruction query attends to each entry, chunk by chunk; sinks first; slots shared', async () => {
        const { headDim: d, numHeads: H, numKvHeads: Hkv, numLayers: NL } = h.cfg;
        const G = H / Hkv;
        // a byte tokenizer in the tiny model's ids
        const encode = (text: string): number[] => Array.from(new TextEncoder().encode(text), (b) => 3 + (b % 250));
        const tokens = promptTokens(L, 7);
        for (const [chunk, B, layerwise, turnEnd] of [
          [16, 12, false, undefined],
          [64, 10, true, ' [/INST] '],
        ] as const) {
          const press = makePress('kvzip', { budget: B, chunk, layerwise });
          const { run } = prefillRun(h, tokens, press);
          run.text = { encode, turnEnd };
          const plan = await press.compress(run);
          // the definition: each chunk's reconstruction fed after the whole prompt, its queries and keys recorded
          const scores = Array.from({ length: NL }, () => Array.from({ length: Hkv }, () => new Array<number>(L).fill(0)));
          for (let s0 = 0; s0 < L; s0 += chunk) {
            const e0 = Math.min(L, s0 + chunk);
            const lead =
              s0 === 0 ? encode(REPEAT_FIRST) : [...encode(REPEAT_NEXT), ...Array.from(tokens.subarray(Math.max(0, s0 - 8), s0))];
            const ids = [...lead, ...encode(turnEnd ?? '\n'), ...Array.from(tokens.subarray(s0, e0))];
            const q: Float64Array[][] = Array.from({ length: NL }, () => []);
            const k: Float64Array[][] = Array.from({ length: NL }, () => []);
            const cache = run.cache.clone();
            h.model.forward({
              tokens: Int32Array.from(ids),
              positions: Int32Array.from(ids, (_, i) => L + i),
              cache,
              logits: 'none',
              observer: (v) => {
                for (let r = 0; r < v.positions.length; r++) {
                  q[v.layer].push(Float64Array.from(v.queries.subarray(r * H * d, (r + 1) * H * d)));
                  k[v.layer].push(Float64Array.from(v.keys.subarray(r * Hkv * d, (r + 1) * Hkv * d)));
                }
              },
            });
            const sinks = Math.min(4, s0);
            for (let l = 0; l < NL; l++) {
              const keys = run.cache.layers[l].map((head) => head.keyRows());
              for (let kv = 0; kv < Hkv; kv++) {
                const key = (j: number): ArrayLike<number> => keys[kv].subarray(j * d, (j + 1) * d);
                for (let qh = kv * G; qh < (kv + 1) * G; qh++) {
                  for (let i = 0; i < ids.length; i++) {
                    const dot = (x: ArrayLike<number>, off: number) => {
                      let t = 0;
                      for (let c = 0; c < d; c++) t += q[l][i][qh * d + c] * x[off + c];
                      return t / Math.sqrt(d);
                    };
                    const cols = [
                      ...Array.from({ length: sinks }, (_, j) => dot(key(j), 0)),
                      ...Array.from({ length: e0 - s0 }, (_, j) => dot(key(s0 + j), 0)),
                      ...Array.from({ length: i + 1 }, (_, t) => dot(k[l][t], kv * d)),
                    ];
                    const mx = Math.max(...cols);
                    const z = cols.reduce((a, x) => a + Math.exp(x - mx), 0);
                    for (let j = 0; j < e0 - s0; j++)
                      scores[l][kv][s0 + j] = Math.max(scores[l][kv][s0 + j], Math.exp(cols[sinks + j] - mx) / z);
                  }
                }
              }
            }
          }
          for (const layer of scores) for (const head of layer) for (let j = 0; j < 4; j++) head[j] = Math.max(head[j], 1);
          const all: [number, number, number, number][] = [];
          const groups = layerwise ? scores.map((layer) => [layer]) : [scores];
          const kept = scores.map((layer) => layer.map(() => [] as number[]));
          for (const group of groups) {
            all.length = 0;
            group.forEach((layer, gl) => layer.forEach((sc, kv) => sc.forEach((x, j) => all.push([x, gl, kv, j]))));
            all.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2] || b[3] - a[3]);
            const base = layerwise ? scores.indexOf(group[0]) : 0;
            for (const [, gl, kv, j] of all.slice(0, group.length * Hkv * B)) kept[base + gl][kv].push(j);
          }
          let total = 0;
          for (let l = 0; l < NL; l++)
            for (let kv = 0; kv < Hkv; kv++) {
              total += plan[l][kv].length;
              assert.deepEqual(
                Array.from(plan[l][kv]),
                kept[l][kv].sort((a, b) => a - b),
                `kvzip chunk ${chunk} layer ${l} head ${kv}`,
              );
            }
          assert.equal(total, NL * Hkv * B);
        }
        const noText = makePress('kvzip', { budget: 12 });
        await assert.rejects(Promise.resolve(noText.compress(prefillRun(h, tokens, noText).run)), /kvzip needs the prompt's tokenizer/);
      });

      it('streaming: sinks plus the most recent', async () => {
        await check(h, 'streaming', { budget: 10, sinks: 3 }, (rec) => ({
          plan: rec.k.map(() =>
            Array.from({ length: h.cfg.numKvHeads }, () => [0, 1, 2, ...Array.from({ length: 7 }, (_, i) => L - 7 + i)]),
          ),
          scores: null,
        }));
      });

      it('knorm: smallest key norms', async () => {
        await check(h, 'knorm', { budget: 9 }, (rec, cfg) => {
          const d = cfg.headDim;
          const scores = rec.k.map((ks) =>
            Array.from({ length: cfg.numKvHeads }, (_, kv) =>
              ks.map((k) => {
                let s = 0;
                for (let i = 0; i < d; i++) s += k[kv * d + i] ** 2;
                return -Math.sqrt(s);
              }),
            ),
          );
          return { plan: scores.map((layer) => layer.map((s) => bfTopK(s, 9))), scores };
        });
      });

      it('keydiff: least similar to the mean normalised key', async () => {
        await check(h, 'keydiff', { budget: 9 }, (rec, cfg) => {
          const d = cfg.headDim;
          const scores = rec.k.map((ks) =>
            Array.from({ length: cfg.numKvHeads }, (_, kv) => {
              const vec = ks.map((k) => Array.from(k.subarray(kv * d, (kv + 1) * d)));
              const norm = (x: number[]) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));
              const anchor = new Array<number>(d).fill(0);
              for (const x of vec)
                x.forEach((v, i) => {
                  anchor[i] += v / norm(x) / vec.length;
                });
              return vec.map((x) => -x.reduce((a, v, i) => a + v * anchor[i], 0) / (norm(x) * norm(anchor)));
            }),
          );
          return { plan: scores.map((layer) => layer.map((s) => bfTopK(s, 9))), scores };
        });
      });

      it('random: seeded uniform scores, deterministic per seed', async () => {
        const expected =
          (seed: number) =>
          (rec: Recorded, cfg: ModelConfig): Expected => {
            const rng = new Rng(seed);
            const scores = rec.k.map(() => Array.from({ length: cfg.numKvHeads }, () => Array.from({ length: L }, () => rng.next())));
            return { plan: scores.map((layer) => layer.map((s) => bfTopK(s, 12))), scores: null };
          };
        await check(h, 'random', { budget: 12, seed: 5 }, expected(5));
        await check(h, 'random', { budget: 12 }, expected(0));
      });

      it('expected-attention: statistics of the pre-RoPE queries, averaged future rotation, value norms', async () => {
        const sinks = 4,
          B = 12;
        await check(h, 'expected-attention', { budget: B, sinks }, (rec, cfg) => {
          const scores = rec.q.map((qs, l) => bfExpectedAttention(cfg, qs, rec.k[l], rec.v[l], sinks));
          return { plan: scores.map((layer) => layer.map((s) => bfTopK(s, B))), scores };
        });
      });

      it('keeps everything when the prompt is no longer than the budget', async () => {
        for (const [name, o] of [
          ['snapkv', { budget: L, window: 4 }],
          ['h2o', { budget: L + 5 }],
          ['knorm', { budget: L }],
          ['adakv', { budget: L }],
          ['pyramidkv', { budget: L }],
          ['expected-attention', { budget: L }],
          ['streaming', { budget: L }],
          ['tova', { budget: L }],
          ['random', { ratio: 0 }],
          ['full', {}],
        ] as [string, PressOptions][]) {
          await check(h, name, o, (rec) => ({
            plan: rec.k.map(() => Array.from({ length: h.cfg.numKvHeads }, () => Array.from({ length: L }, (_, i) => i))),
            scores: null,
          }));
        }
      });
    });
  }
});

/** Expected Attention in float64 from its definition (kvpress). */
function bfExpectedAttention(cfg: ModelConfig, qs: Float64Array[], ks: Float64Array[], vs: Float64Array[], sinks: number): number[][] {
  const { numHeads: H, numKvHeads: Hkv, headDim: d, ropeTheta: theta } = cfg;
  const G = H / Hkv,
    half = d / 2,
    Lp = qs.length;
  const inv = Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / d));
  // the rotation R(p) as a matrix: (R x)_i = cos x_i - sin x_{i+half}, (R x)_{i+half} = sin x_i + cos x_{i+half}
  const rot = (p: number): number[][] => {
    const r = Array.from({ length: d }, () => new Array<number>(d).fill(0));
    for (let i = 0; i < half; i++) {
      const c = Math.cos(p * inv[i]),
        s = Math.sin(p * inv[i]);
      r[i][i] = c;
      r[i][i + half] = -s;
      r[i + half][i] = s;
      r[i + half][i + half] = c;
    }
    return r;
  };
  const matvec = (m: number[][], x: number[]) => m.map((row) => row.reduce((a, v, i) => a + v * x[i], 0));
  const transpose = (m: number[][]) => m[0].map((_, j) => m.map((row) => row[j]));
  const matmul = (a: number[][], b: number[][]) => a.map((row) => b[0].map((_, j) => row.reduce((acc, v, t) => acc + v * b[t][j], 0)));
  const Rbar = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (let p = Lp; p < Lp + 512; p++)
    rot(p).forEach((row, i) =>
      row.forEach((v, j) => {
        Rbar[i][j] += v / 512;
      }),
    );
  const perQuery: number[][] = [];
  for (let h = 0; h < H; h++) {
    // pre-RoPE queries: rotate back by the transpose
    const pre = qs.slice(sinks).map((q, r) => matvec(transpose(rot(r + sinks)), Array.from(q.subarray(h * d, (h + 1) * d))));
    const mu = new Array<number>(d).fill(0);
    for (const q of pre)
      q.forEach((v, i) => {
        mu[i] += v / pre.length;
      });
    const cov = Array.from({ length: d }, (_, i) =>
      Array.from({ length: d }, (_, j) => pre.reduce((a, q) => a + (q[i] - mu[i]) * (q[j] - mu[j]), 0) / pre.length),
    );
    const muR = matvec(Rbar, mu);
    const covR = matmul(matmul(Rbar, cov), transpose(Rbar));
    const kv = Math.floor(h / G);
    const z = ks.slice(sinks).map((kk) => {
      const k = Array.from(kk.subarray(kv * d, (kv + 1) * d));
      const lin = k.reduce((a, v, i) => a + v * muR[i], 0) / Math.sqrt(d);
      const quad = k.reduce((a, v, i) => a + v * covR[i].reduce((b, c, j) => b + c * k[j], 0), 0) / (2 * d);
      return lin + quad;
    });
    const m = Math.max(...z);
    const e = z.map((x) => Math.exp(x - m));
    const sum = e.reduce((a, b) => a + b, 0);
    perQuery.push(e.map((x) => x / sum));
  }
  return Array.from({ length: Hkv }, (_, kv) => {
    const red = bfReduce(perQuery.slice(kv * G, (kv + 1) * G), 'mean');
    const out: number[] = [];
    for (let j = 0; j < Lp; j++) {
      if (j < sinks) {
        out.push(Infinity);
        continue;
      }
      const v = vs[j].subarray(kv * d, (kv + 1) * d);
      out.push(red[j - sinks] * Math.sqrt(v.reduce((a, b) => a + b * b, 0)));
    }
    return out;
  });
}

describe('kvzip where the positions run out', () => {
  const encode = (text: string): number[] => Array.from(new TextEncoder().encode(text), (b) => 3 + (b % 250));
  const tokens = promptTokens(L, 7);
  const planOf = async (maxPositions: number, chunk: number) => {
    const h = tinyModel({ max_position_embeddings: maxPositions });
    const press = makePress('kvzip', { budget: 12, chunk });
    const { run } = prefillRun(h, tokens, press);
    run.text = { encode };
    return press.compress(run);
  };

  it('shrinks its chunks to the room the prompt leaves, and says so in one line where there is none', async () => {
    // the instruction and the previous chunk's tail take 71 positions here: 160 - 40 - 71 = 49 per chunk
    const lead = Math.max(encode(REPEAT_FIRST).length, encode(REPEAT_NEXT).length + 8) + encode('\n').length;
    assert.deepEqual(await planOf(160, 2048), await planOf(4096, 160 - L - lead));
    await assert.rejects(
      Promise.resolve(planOf(L + lead, 2048)),
      /kvzip: the prompt \(40 tokens\) leaves no room for a reconstruction chunk/,
    );
  });
});

describe('budget-free work shared over one prefill (an eval grid)', () => {
  it('every method keeps what it keeps alone, at every budget, while the shared parts are computed once', async () => {
    const h = tinyModel(GROUPS[2].overrides);
    const encode = (text: string): number[] => Array.from(new TextEncoder().encode(text), (b) => 3 + (b % 250));
    const tokens = promptTokens(L, 11);
    const names = [
      'snapkv',
      'pyramidkv',
      'adakv',
      'chunkkv',
      'criticalkv',
      'defensivekv',
      'layer-defensivekv',
      'kvzip',
      'tova',
      'h2o',
      'laq',
    ];
    const budgets = [8, 12, 20];
    const presses = names.flatMap((name) =>
      budgets.map((budget) =>
        makePress(name, name === 'kvzip' ? { budget, chunk: 16 } : name === 'tova' ? { budget } : { budget, window: 4 }),
      ),
    );
    // other settings of the same scorers share nothing with the ones above
    presses.push(makePress('snapkv', { budget: 12, window: 2, kernel: 3 }), makePress('defensivekv', { budget: 12, window: 2 }));
    const run = prefill(h.model, tokens, { record: presses.map((p) => p.capture(L)), chunk: 16, kvDtype: 'f32', text: { encode } });
    let made = 0;
    const shared = new (class extends SharedWork {
      override get<T>(key: string, make: () => T): T {
        return super.get(key, () => (made++, make()));
      }
    })();
    const asked = new Set<string>();
    const spy = new (class extends SharedWork {
      override get<T>(key: string, make: () => T): T {
        asked.add(key);
        return shared.get(key, make);
      }
    })();
    for (const press of presses) {
      const alone = await press.compress(run);
      const inGrid = await press.compress({ ...run, shared: spy });
      assert.deepEqual(inGrid, alone, `${press.name}: the same kept entries with shared work`);
    }
    // 35 presses: the window attention once for the five SnapKV-scored methods (TOVA's and the second SnapKV's
    // apart), DefensiveKV's once for both (the second one's apart), KVzip's reconstruction once, the value norms
    // once per layer and KV head for each of the two windows
    assert.equal(made, asked.size);
    assert.equal(made, 6 + 2 * h.cfg.numLayers * h.cfg.numKvHeads, 'computations');
  });
});
