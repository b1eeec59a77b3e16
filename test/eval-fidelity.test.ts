import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlamaModel } from '../src/model/llama.js';
import { attentionMass, attentionRecall, oracleHitRate, oracleTopK, outputAgreement, type FidelityTrace } from '../src/eval/fidelity.js';
import { ModelEngine } from '../src/eval/model-engine.js';
import { restrictTrace } from '../src/eval/runner.js';
import type { EvalCase } from '../src/eval/case.js';
import type { PreparedPrompt } from '../src/eval/prompt.js';
import type { Mode, Setting } from '../src/eval/settings.js';
import { Rng } from '../src/util/rng.js';
import { referenceForward } from './reference/llama-f64.js';
import { randomWeights, tinyConfig } from './helpers/random-model.js';
import { byteTokenizer } from './helpers/eval-fixtures.js';

const cfg = tinyConfig('llama');
const weights = randomWeights(cfg, 11, 0.25);
const model = new LlamaModel(cfg, weights);
const tok = byteTokenizer();
const { numLayers: NL, numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
const G = H / Hkv;

function softmax64(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]);
  const out = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += out[i] = Math.exp(x[i] - m);
  for (let i = 0; i < x.length; i++) out[i] /= s;
  return out;
}

/** Brute force from the float64 reference: attention of each answer-choosing row on the first `Lc` keys. */
function bruteAttention(rows: number[], Lc: number, firstRow: number, T: number): number[][][][] {
  const ref = referenceForward(cfg, weights, { tokens: rows });
  const A: number[][][][] = []; // [t][l][h][j]
  for (let t = 0; t < T; t++) {
    const row = firstRow + t;
    A.push(
      Array.from({ length: NL }, (_, l) =>
        Array.from({ length: H }, (_, h) => {
          const kvh = Math.floor(h / G);
          const s = Array.from({ length: Lc }, (_, j) => {
            let dot = 0;
            for (let i = 0; i < d; i++) dot += ref.queries[l][row][h * d + i] * ref.keys[l][j][kvh * d + i];
            return dot / Math.sqrt(d);
          });
          return Array.from(softmax64(s));
        }),
      ),
    );
  }
  return A;
}

function bruteRecall(A: number[][][][], plan: Int32Array[][]): number {
  let sum = 0;
  let n = 0;
  for (const step of A)
    for (let l = 0; l < NL; l++)
      for (let h = 0; h < H; h++) {
        for (const j of plan[l][Math.floor(h / G)]) if (j < step[l][h].length) sum += step[l][h][j];
        n++;
      }
  return sum / n;
}

function bruteHit(A: number[][][][], plan: Int32Array[][], Lc: number): number {
  let sum = 0;
  for (let l = 0; l < NL; l++)
    for (let kvh = 0; kvh < Hkv; kvh++) {
      const kept = [...plan[l][kvh]].filter((j) => j < Lc);
      const score = Array.from({ length: Lc }, (_, j) => {
        let s = 0;
        for (const step of A) for (let g = 0; g < G; g++) s += step[l][kvh * G + g][j];
        return s;
      });
      if (kept.length >= Lc) {
        sum += 1;
        continue;
      }
      // all positions ranked by score, later position first on ties; the oracle is the first |kept|
      const ranked = score.map((s, j) => [s, j]).sort((a, b) => b[0] - a[0] || b[1] - a[1]);
      const oracle = new Set(ranked.slice(0, kept.length).map((x) => x[1]));
      sum += kept.length === 0 ? 0 : kept.filter((j) => oracle.has(j)).length / kept.length;
    }
  return sum / (NL * Hkv);
}

function makeCase(maxNewTokens: number): { c: EvalCase; prompt: PreparedPrompt } {
  const rng = new Rng(5);
  const context = Int32Array.from({ length: 40 }, () => 32 + rng.int(90));
  const question = Int32Array.from({ length: 6 }, () => 32 + rng.int(90));
  const c: EvalCase = {
    id: 'tiny',
    task: 'plain:tiny',
    before: '',
    context: '',
    after: '',
    question: '',
    answers: ['x'],
    scoring: { metric: 'f1' },
    maxNewTokens,
    chat: false,
    answerPrefix: '',
    meta: {},
  };
  return { c, prompt: { contextTokens: context, questionTokens: question, truncatedTokens: 0 } };
}

test('oracle top-k breaks ties toward the later position', () => {
  assert.deepEqual([...oracleTopK(Float64Array.from([1, 3, 3, 0, 3]), 2)], [2, 4]);
  assert.deepEqual([...oracleTopK(Float64Array.from([5, 1, 2]), 0)], []);
});

test('fidelity measures on a tiny random model agree with brute force from the float64 reference', async () => {
  const T = 6;
  const { c, prompt } = makeCase(T);
  const engine = new ModelEngine(model, tok, 'tiny', { kvDtype: 'f32' });
  const settings: Setting[] = (['query-aware', 'query-agnostic'] as Mode[]).flatMap((mode): Setting[] => [
    { press: { name: 'snapkv', options: { window: 4, kernel: 3 } }, budget: 12, mode },
    { press: { name: 'streaming', options: {} }, budget: 10, mode },
  ]);
  const session = engine.open(prompt, c, settings);
  const full = await session.full();
  const prompt2 = [...prompt.contextTokens, ...prompt.questionTokens];
  const L = prompt2.length;

  // the full run is greedy decoding with the full cache
  const refRows = [...prompt2];
  for (let t = 0; t < full.tokens.length; t++) {
    const ref = referenceForward(cfg, weights, { tokens: refRows, lastOnly: true });
    const logits = ref.logits[ref.logits.length - 1];
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    assert.equal(full.tokens[t], best, `greedy token ${t}`);
    for (let i = 0; i < logits.length; i += 37) assert.ok(Math.abs(full.logits[t][i] - logits[i]) < 1e-3);
    refRows.push(best);
  }
  const Tn = full.tokens.length;
  assert.equal(full.trace.queries.length, Tn);
  assert.equal(full.trace.length, L);

  for (const mode of ['query-aware', 'query-agnostic'] as Mode[]) {
    const Lc = mode === 'query-aware' ? L : prompt.contextTokens.length;
    const A = bruteAttention([...prompt2, ...full.tokens.slice(0, Tn - 1)], Lc, L - 1, Tn);
    const mass = attentionMass(restrictTrace(full.trace, Lc));
    for (const s of settings.filter((x) => x.mode === mode)) {
      const run = await session.compressed(s.press, s.budget, mode, full);
      const plan = run.kept as Int32Array[][];
      for (const heads of plan) for (const h of heads) assert.equal(h.length, s.budget);
      const recall = attentionRecall(mass, plan);
      assert.ok(Math.abs(recall - bruteRecall(A, plan)) < 1e-5, `${mode} ${s.press.name} recall ${recall}`);
      assert.ok(recall > 0 && recall < 1);
      assert.ok(Math.abs(oracleHitRate(mass, plan) - bruteHit(A, plan, Lc)) < 1e-9, `${mode} ${s.press.name} hit`);

      // output agreement: the compressed cache fed the full run's tokens, against masked full attention
      const visible = (layer: number, qHead: number, qPos: number, kPos: number) =>
        qPos < Lc || kPos >= Lc || plan[layer][Math.floor(qHead / G)].includes(kPos);
      const ref = referenceForward(cfg, weights, { tokens: [...prompt2, ...full.tokens.slice(0, Tn - 1)], visible });
      const refFull = referenceForward(cfg, weights, { tokens: [...prompt2, ...full.tokens.slice(0, Tn - 1)] });
      assert.ok(run.forcedLogits);
      assert.equal(run.forcedLogits!.length, Tn);
      let kl = 0;
      let agree = 0;
      for (let t = 0; t < Tn; t++) {
        const row = L - 1 + t;
        for (let i = 0; i < cfg.vocabSize; i += 29)
          assert.ok(Math.abs(run.forcedLogits![t][i] - ref.logits[row][i]) < 1e-3, `${mode} forced logits ${t}`);
        const p = softmax64(refFull.logits[row]);
        const q = softmax64(ref.logits[row]);
        let s2 = 0;
        for (let i = 0; i < p.length; i++) s2 += p[i] * Math.log(p[i] / q[i]);
        kl += s2;
        const am = (x: Float64Array) => x.indexOf(Math.max(...x));
        if (am(p) === am(q)) agree++;
      }
      const got = outputAgreement(full.logits, run.forcedLogits!);
      assert.ok(Math.abs(got.kl - kl / Tn) < 1e-4, `${mode} ${s.press.name} KL ${got.kl} vs ${kl / Tn}`);
      assert.equal(got.top1, agree / Tn);
      if (mode === 'query-aware') assert.equal(run.forcedLogits![0], full.logits[0]);
    }
  }

  // heads of different sizes: a head keeping the whole prompt scores 1, an empty head 0
  const mass = attentionMass(full.trace);
  const rng = new Rng(3);
  const odd: Int32Array[][] = Array.from({ length: NL }, (_, l) =>
    Array.from({ length: Hkv }, (_, h) => {
      if (l === 0 && h === 0) return Int32Array.from({ length: L }, (_, j) => j);
      if (l === 1 && h === 1) return new Int32Array(0);
      return Int32Array.from(new Set(Array.from({ length: 5 + 3 * h + l }, () => rng.int(L)))).sort();
    }),
  );
  const A = bruteAttention([...prompt2, ...full.tokens.slice(0, Tn - 1)], L, L - 1, Tn);
  assert.ok(Math.abs(oracleHitRate(mass, odd) - bruteHit(A, odd, L)) < 1e-9);
  assert.ok(Math.abs(attentionRecall(mass, odd) - bruteRecall(A, odd)) < 1e-5);
  session.close();
});

test('fidelity edge cases: keeping everything is perfect, no steps gives NaN', () => {
  const trace: FidelityTrace = {
    layers: 1,
    heads: 2,
    kvHeads: 1,
    headDim: 2,
    length: 3,
    keys: [[Float32Array.from([1, 0, 0, 1, 1, 1])]],
    queries: [[Float32Array.from([1, 0, 0, 1])]],
  };
  const m = attentionMass(trace);
  // hand-computed: head 0 scores (1, 0, 1)/sqrt2, head 1 (0, 1, 1)/sqrt2; each softmax sums to 1
  const e = Math.exp(1 / Math.SQRT2);
  const z = 2 * e + 1;
  assert.ok(Math.abs(m.mass[0][0][2] - 2 * (e / z)) < 1e-12);
  assert.ok(Math.abs(m.mass[0][0][0] - (e / z + 1 / z)) < 1e-12);
  const all = [[Int32Array.from([0, 1, 2])]];
  assert.ok(Math.abs(attentionRecall(m, all) - 1) < 1e-12);
  assert.equal(oracleHitRate(m, all), 1);
  // keep position 2 only: it is the oracle's top-1 (mass 2e/z), recall = e/z per head
  assert.equal(oracleHitRate(m, [[Int32Array.from([2])]]), 1);
  assert.ok(Math.abs(attentionRecall(m, [[Int32Array.from([2])]]) - e / z) < 1e-12);
  assert.equal(oracleHitRate(m, [[Int32Array.from([0])]]), 0);
  assert.ok(Number.isNaN(attentionRecall(attentionMass({ ...trace, queries: [] }), all)));
  const same = [Float32Array.from([0, 1, 2])];
  assert.deepEqual(outputAgreement(same, same), { top1: 1, kl: 0 });
  // p = softmax(0, ln 3) = (1/4, 3/4), q = uniform: KL = 1/4 ln(1/2) + 3/4 ln(3/2)
  const kl = outputAgreement([Float32Array.from([0, Math.log(3)])], [Float32Array.from([0, 0])]).kl;
  assert.ok(Math.abs(kl - (0.25 * Math.log(0.5) + 0.75 * Math.log(1.5))) < 1e-7);
});
