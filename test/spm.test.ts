import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedData } from '../src/paths.js';
import { ggufTokenizer, ggufValue, readGguf, readGgufTensorF32 } from '../src/model/gguf.js';
import { loadModelDir } from '../src/model/load.js';
import { LlamaModel } from '../src/model/llama.js';
import { Tokenizer, spmTokenizer } from '../src/model/tokenizer.js';
import { GgufTokenType } from '../src/model/gguf.js';
import { generateFromTokens } from '../src/generate/pipeline.js';
import type { LayerWeights, Weights } from '../src/model/types.js';
import { referenceForward } from './reference/llama-f64.js';
import { Rng } from '../src/util/rng.js';
import { cli } from './helpers/cli.js';

const STORIES = join(sharedData, 'models', 'stories260K', 'stories260K.gguf');
const skip = existsSync(STORIES) ? false : `${STORIES} not found`;

// ------------------------------------------------ an independent SentencePiece-BPE encoder (llama2.c's loop)

interface RefVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  addSpacePrefix: boolean;
}

/**
 * llama2.c's encode, plainly: UTF-8 characters (or their bytes + 3 when not in the vocabulary), then merge
 * the best pair (highest score of the merged token, leftmost on ties) with a full scan each round.
 * Special tokens are split off first; a text fragment at the start or after a special gets a leading space.
 */
function referenceEncode(v: RefVocab, text: string): number[] {
  const lookup = new Map<string, number>();
  v.tokens.forEach((t, i) => {
    if (v.types[i] !== GgufTokenType.UNUSED && !lookup.has(t)) lookup.set(t, i);
  });
  const byteId = (b: number) => v.tokens.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const specials = v.tokens
    .map((t, i) => ({ t, i }))
    .filter(({ i }) => v.types[i] === GgufTokenType.CONTROL || v.types[i] === GgufTokenType.USER_DEFINED);
  const out: number[] = [];
  let rest = text,
    afterSpecial = true;
  while (rest.length > 0) {
    let at = rest.length,
      hit: { t: string; i: number } | null = null;
    for (const s of specials) {
      const k = rest.indexOf(s.t);
      if (k >= 0 && (k < at || (k === at && hit !== null && s.t.length > hit.t.length))) {
        at = k;
        hit = s;
      }
    }
    const piece = rest.slice(0, at);
    if (piece.length > 0) {
      const spaced = ((v.addSpacePrefix && afterSpecial ? ' ' : '') + piece).split(' ').join('\u2581');
      const ids: number[] = [];
      for (const ch of spaced) {
        const id = lookup.get(ch);
        if (id !== undefined && v.types[id] !== GgufTokenType.BYTE) ids.push(id);
        else for (const b of new TextEncoder().encode(ch)) ids.push(byteId(b));
      }
      for (;;) {
        let best = -1,
          bestScore = -Infinity,
          bestId = -1;
        for (let i = 0; i + 1 < ids.length; i++) {
          const id = lookup.get(v.tokens[ids[i]] + v.tokens[ids[i + 1]]);
          if (id !== undefined && v.scores[id] > bestScore) {
            best = i;
            bestScore = v.scores[id];
            bestId = id;
          }
        }
        if (best < 0) break;
        ids.splice(best, 2, bestId);
      }
      out.push(...ids);
      afterSpecial = false;
    }
    if (hit) {
      out.push(hit.i);
      rest = rest.slice(at + hit.t.length);
      afterSpecial = true;
    } else rest = '';
  }
  return out;
}

const MIXED = [
  'Once upon a time, there was a little girl named Lily.',
  'She had 3 cats and 12 dogs; in 2024 she counted 1,234,567 of them!',
  '  two leading spaces, a tab\there, and\nnew lines\n\nand trailing spaces  ',
  'Ünïcödé: naïve café, Straße, Ελληνικά, 日本語, emoji 🎉 and ∑√ ≤.',
  '<s>a special token inside</s> the text, then more text',
];

/** A larger vocabulary than stories260K's: bytes, every character of the samples, and scored merges (with ties). */
function syntheticVocab(): RefVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [GgufTokenType.UNKNOWN, GgufTokenType.CONTROL, GgufTokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(GgufTokenType.BYTE);
  }
  const chars = [
    ...new Set([
      ...MIXED.join(' ')
        .replace(/[🎉日]/gu, '')
        .split(' ')
        .join('\u2581'),
    ]),
  ];
  for (const c of chars) {
    tokens.push(c);
    types.push(GgufTokenType.NORMAL);
  }
  const rng = new Rng(17);
  const words = MIXED.join(' ')
    .split(/\s+/)
    .map((w) => `\u2581${w}`);
  const seen = new Set(tokens);
  for (const w of words) {
    const cs = [...w];
    for (let len = 2; len <= Math.min(6, cs.length); len++) {
      for (let i = 0; i + len <= cs.length; i++) {
        const t = cs.slice(i, i + len).join('');
        // as in a trained model, every character of a piece is a piece (日 and 🎉 stay outside: byte fallback)
        if (!seen.has(t) && !/[🎉日]/u.test(t) && rng.next() < 0.5) {
          seen.add(t);
          tokens.push(t);
          types.push(GgufTokenType.NORMAL);
        }
      }
    }
  }
  // scores: mostly distinct, some equal (ties go to the leftmost pair)
  const scores = tokens.map((_, i) => (i < 259 ? 0 : -Math.floor(rng.next() * 40)));
  return { tokens, scores, types, addSpacePrefix: true };
}

test(
  'SentencePiece BPE: ids equal an independent greedy encoder (stories260K and a larger vocabulary with ties, bytes, specials)',
  { skip },
  () => {
    const g = readGguf(STORIES);
    const tok = ggufTokenizer(g);
    const stories: RefVocab = {
      tokens: ggufValue(g, 'tokenizer.ggml.tokens') as string[],
      scores: ggufValue(g, 'tokenizer.ggml.scores') as number[],
      types: ggufValue(g, 'tokenizer.ggml.token_type') as number[],
      addSpacePrefix: true,
    };
    for (const s of MIXED) {
      const ids = tok.encode(s);
      assert.deepEqual(ids, referenceEncode(stories, s), s);
      // a special token is followed by the space that add_space_prefix puts before the next text (as llama.cpp does)
      assert.equal(tok.decode(ids), s.replace(/(<\/?s>)/g, '$1 '));
    }
    assert.deepEqual(
      tok.encode('Once upon a time').map((i) => tok.tokenToString(i)),
      ['▁Once', '▁upon', '▁a', '▁time'],
    );
    const v = syntheticVocab();
    const syn = spmTokenizer({ ...v, unkId: 0, source: 'synthetic' }, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    let merged = 0;
    for (const s of MIXED) {
      const ids = syn.encode(s);
      assert.deepEqual(ids, referenceEncode(v, s), s);
      merged += ids.filter((i) => syn.tokenToString(i).length > 1 && !syn.tokenToString(i).startsWith('<0x')).length;
      assert.equal(
        syn.decode(ids, { skipSpecialTokens: true }),
        s.replace(/<\/?s>/g, (_m, at: number) => (at === 0 ? '' : ' ')),
      );
    }
    assert.ok(merged > 40, `only ${merged} merged tokens: the vocabulary does not exercise merging`);
    assert.deepEqual(
      syn.encode('日').map((i) => syn.tokenToString(i)),
      ['▁', '<0xE6>', '<0x97>', '<0xA5>'],
      'a character outside the vocabulary falls back to its bytes',
    );
  },
);

test('BOS as the tokenizer says: added once for SentencePiece GGUF files, never for SmolLM2, never twice', { skip }, () => {
  const tok = ggufTokenizer(readGguf(STORIES));
  assert.equal(tok.addBosToken, true);
  assert.deepEqual(tok.encode('Hi', { addSpecialTokens: true }).slice(0, 1), [1]);
  assert.deepEqual(tok.encode('<s>Hi', { addSpecialTokens: true }).filter((i) => i === 1).length, 1);
  assert.equal(tok.encode('Hi').includes(1), false);
  const smol = Tokenizer.fromDir(join(sharedData, 'tokenizers', 'SmolLM2-135M-Instruct'));
  assert.equal(smol.addBosToken, false);
  assert.deepEqual(smol.encode('Hi', { addSpecialTokens: true }), smol.encode('Hi'));
});

/** The file's tensors as they are stored (q/k rows in llama.cpp's order), for a reference with interleaved RoPE. */
function rawWeights(file: string): { weights: Weights; layers: number } {
  const g = readGguf(file);
  const t = (name: string) =>
    readGgufTensorF32(
      g,
      g.tensors.find((x) => x.name === name)!,
    );
  const layers = ggufValue(g, 'llama.block_count') as number;
  const ls: LayerWeights[] = [];
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    ls.push({
      inputNorm: t(p + 'attn_norm.weight'),
      q: t(p + 'attn_q.weight'),
      k: t(p + 'attn_k.weight'),
      v: t(p + 'attn_v.weight'),
      o: t(p + 'attn_output.weight'),
      postNorm: t(p + 'ffn_norm.weight'),
      gate: t(p + 'ffn_gate.weight'),
      up: t(p + 'ffn_up.weight'),
      down: t(p + 'ffn_down.weight'),
      qBias: null,
      kBias: null,
      vBias: null,
      qNorm: null,
      kNorm: null,
    } as unknown as LayerWeights);
  }
  return {
    weights: { embed: t('token_embd.weight'), layers: ls, finalNorm: t('output_norm.weight'), lmHead: t('output.weight') } as Weights,
    layers,
  };
}

test('stories260K: greedy tokens and log-probabilities equal the float64 reference on the file as stored', { skip }, async () => {
  const m = loadModelDir(STORIES);
  assert.equal(m.config.numLayers, 5);
  assert.equal(m.config.numKvHeads, 4);
  assert.equal(m.config.tieWordEmbeddings, false);
  const model = new LlamaModel(m.config, m.weights);
  const prompt = m.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
  // an f32 cache: the reference's arithmetic
  const r = generateFromTokens(model, prompt, { maxNewTokens: 24, topLogprobs: 1, kvDtype: 'f32' });
  const text = m.tokenizer.decode(r.tokens);
  assert.match(text, /^, there was a little girl named Lily/);
  const raw = rawWeights(STORIES);
  const ref = referenceForward(m.config, raw.weights, { tokens: [...prompt, ...r.tokens], rope: 'interleaved' });
  for (let s = 0; s < r.tokens.length; s++) {
    const row = ref.logits[prompt.length - 1 + s];
    let best = 0,
      max = -Infinity,
      sum = 0;
    for (let j = 0; j < row.length; j++)
      if (row[j] > max) {
        max = row[j];
        best = j;
      }
    for (let j = 0; j < row.length; j++) sum += Math.exp(row[j] - max);
    assert.equal(r.tokens[s], best, `step ${s}: token ${r.tokens[s]} against the reference's ${best}`);
    const lp = row[best] - max - Math.log(sum);
    assert.ok(Math.abs(r.steps[s].top[0].logprob - lp) < 1e-4, `step ${s}: logprob ${r.steps[s].top[0].logprob} against ${lp}`);
  }
});

test('kvevict generate --model stories260K.gguf --prompt continues the story, BOS first in promptTokens', { skip }, () => {
  const res = cli(['generate', '--model', STORIES, '--prompt', 'Once upon a time', '--max-new-tokens', '12', '--json']);
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { promptTokens: number[]; text: string };
  assert.deepEqual(out.promptTokens, [1, 403, 407, 261, 378]);
  assert.match(out.text, /^, there was a little girl/);
});

test('a SentencePiece GGUF without scores, or with a score table of the wrong length, is refused in one line', { skip }, async () => {
  const { writeGgufFile, GgufType } = await import('../src/model/gguf.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const g = readGguf(STORIES);
  const tensors = g.tensors.map((t) => ({ name: t.name, shape: [...t.dims].reverse(), data: readGgufTensorF32(g, t), type: 0 }));
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-spm-'));
  try {
    for (const [what, edit] of [
      [
        'no scores',
        (md: typeof g.metadata) => {
          md.delete('tokenizer.ggml.scores');
        },
      ],
      [
        'too few scores',
        (md: typeof g.metadata) => {
          md.set('tokenizer.ggml.scores', { type: GgufType.ARRAY, arrayType: GgufType.FLOAT32, value: [0, 1, 2] });
        },
      ],
    ] as const) {
      const md = new Map(g.metadata);
      edit(md);
      const file = join(dir, 'x.gguf');
      writeGgufFile(file, md, tensors);
      assert.throws(() => loadModelDir(file), /needs tokenizer\.ggml\.scores, one finite number per token/, what);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
