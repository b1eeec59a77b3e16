import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../src/autograd/tensor.js';
import { AdamW, clipGradNorm } from '../src/train/adamw.js';
import { learningRate } from '../src/train/schedule.js';
import { DEFAULT_PRETRAIN, TINY_PRETRAIN, initFromModel, modelConfigOf, pretrain, type PretrainOptions } from '../src/train/pretrain.js';
import { initParams } from '../src/train/params.js';
import { TINY_CURRICULUM, makeSample, trainingBatch, DEFAULT_CURRICULUM } from '../src/train/data/batch.js';
import { loadCorpus } from '../src/train/data/corpus.js';
import { encodeDialogue, encodePrompt, IM_END, IM_START } from '../src/train/data/encode.js';
import { insertAtDepths } from '../src/train/data/haystack.js';
import { TASKS } from '../src/train/data/tasks.js';
import { HELD_OUT_ESSAYS, NEVER_TRAINED, NIAH_NEEDLE, heldOutHaystack, readEssay, trainingEssayFiles } from '../src/eval/datasets/split.js';
import { niahSample } from '../src/train/evaluate.js';
import { parseConfig } from '../src/model/config.js';
import { readSafetensorsHeader } from '../src/model/safetensors.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { Rng } from '../src/util/rng.js';
import { smolLM2Vocab } from '../src/train/data/vocab.js';

const corpus = loadCorpus();
const decode = (ids: ArrayLike<number>) => Buffer.from(Array.from(ids).filter((i) => i < 256)).toString('utf8');

test('AdamW matches a float64 hand computation, with decay on matrices only', () => {
  const w = new Tensor(new Float32Array([0.5, -1, 2, 0.25]), [2, 2], true);
  const n = new Tensor(new Float32Array([1, 1]), [2], true);
  const opt = new AdamW([w, n], { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const grads = [
    [0.1, -0.2, 0.3, 0],
    [0.05, 0.4, -0.1, 0.2],
  ];
  const ref = [0.5, -1, 2, 0.25],
    m = [0, 0, 0, 0],
    v = [0, 0, 0, 0];
  const nRef = [1, 1],
    nm = [0, 0],
    nv = [0, 0];
  grads.forEach((g, t) => {
    const lr = 0.01 * (t + 1);
    w.gradBuf().set(g);
    n.gradBuf().set([g[0], g[1]]);
    opt.step(lr);
    const c1 = 1 - 0.9 ** (t + 1),
      c2 = 1 - 0.99 ** (t + 1);
    for (let i = 0; i < 4; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
      ref[i] = ref[i] * (1 - lr * 0.1) - (lr * m[i]) / c1 / (Math.sqrt(v[i] / c2) + 1e-8);
    }
    for (let i = 0; i < 2; i++) {
      nm[i] = 0.9 * nm[i] + 0.1 * g[i];
      nv[i] = 0.99 * nv[i] + 0.01 * g[i] * g[i];
      nRef[i] = nRef[i] - (lr * nm[i]) / c1 / (Math.sqrt(nv[i] / c2) + 1e-8);
    }
  });
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(w.data[i] - ref[i]) < 1e-6, `w[${i}] ${w.data[i]} vs ${ref[i]}`);
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(n.data[i] - nRef[i]) < 1e-6, `norm[${i}] ${n.data[i]} vs ${nRef[i]}`);
});

test('gradient clipping scales to the maximum global norm', () => {
  const a = new Tensor(new Float32Array(2), [2], true),
    b = new Tensor(new Float32Array(1), [1], true);
  a.gradBuf().set([3, 0]);
  b.gradBuf().set([4]);
  assert.equal(clipGradNorm([a, b], 1), 5);
  assert.ok(Math.abs(a.grad![0] - 0.6) < 1e-7 && Math.abs(b.grad![0] - 0.8) < 1e-7);
  assert.ok(Math.abs(clipGradNorm([a, b], 10) - 1) < 1e-6);
});

test('schedule: linear warm-up, cosine to the floor', () => {
  const s = { peak: 1e-3, warmup: 10, total: 110, minRatio: 0.1 };
  assert.ok(Math.abs(learningRate(s, 0) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 9) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 10) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 60) - (1e-4 + 0.5 * 9e-4)) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 110) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 500) - 1e-4) < 1e-12);
});

test('split: held-out essays, needle and question never reach training data', () => {
  assert.equal(HELD_OUT_ESSAYS.length, 8);
  for (const f of HELD_OUT_ESSAYS) assert.ok(!trainingEssayFiles().includes(f));
  assert.ok(!corpus.trainText.includes(readEssay(HELD_OUT_ESSAYS[0]).slice(100, 400)));
  assert.ok(heldOutHaystack().startsWith(readEssay('addiction.txt').slice(0, 100)));
  for (let step = 0; step < 60; step++) {
    const batch = trainingBatch(corpus, 3, step, step / 60, 4096, DEFAULT_CURRICULUM, 1024);
    const text = decode(batch.ids);
    for (const s of NEVER_TRAINED) assert.ok(!text.includes(s), `step ${step} contains "${s}"`);
    for (const w of corpus.heldOutWords.slice(0, 0)) assert.ok(!text.includes(w));
  }
});

test("held out in kind: no training batch holds a held-out wording, haystack kind or key list (RULER's templates among them)", () => {
  const v = smolLM2Vocab(8192);
  const tok = new Tokenizer(v.tokenizerJson() as Record<string, unknown>, v.tokenizerConfig() as Record<string, unknown>);
  const banned = [
    'mentioned in the provided text',
    'One of the special magic',
    'special magic',
    'Memorize and track the chain',
    'VAR ',
    'Below is a numbered list of words',
    'Read the following coded text',
    'Everyone knows that',
    'registered under',
    'Quick question',
    'Report each',
    'recover the omitted words',
    'Reproduce the words',
    '| id | item | owner | count |',
    ...NEVER_TRAINED,
  ];
  const heldOutInstruction = corpus.heldOutInstructTexts[0].slice(0, 60);
  const mixes = ['default', 'copy', 'retrieve', 'lookup', 'bind'];
  for (let step = 0; step < 24; step++) {
    const mix = mixes[step % mixes.length];
    const batch = trainingBatch(corpus, 5, step, 0.5, 4096, [{ until: 2, lengths: [512], mix }], 512, v);
    const text = tok.decode(Array.from(batch.ids));
    for (const b of [...banned, heldOutInstruction]) assert.ok(!text.includes(b), `step ${step} (${mix}) contains "${b}"`);
  }
  // RULER's keys and word lists are held-out vocabulary
  assert.ok(!corpus.trainWords.includes('apple') && corpus.heldOutWords.includes('apple'));
  // and the held-out split does use them
  const held = makeSample(new Rng(3), corpus, 'heldout', 'niah_multikey', 2048, v);
  assert.match(
    tok.decode(Array.from(held.ids)),
    /special magic|registered under|was issued|combination|passphrase|motto|serial key|checksum/,
  );
});

test('samples: every task fits its length and its answer spans decode to the answers', () => {
  const rng = new Rng(5);
  for (const task of [...TASKS, 'text' as const]) {
    for (const length of [256, 1024]) {
      const s = makeSample(rng, corpus, 'train', task, length);
      assert.ok(s.ids.length <= length + 1, `${task} ${length}: ${s.ids.length} ids`);
      assert.equal(s.weights.length, s.ids.length - 1);
      if (task === 'text') continue;
      assert.ok(s.answers.length >= 1, task);
      for (const a of s.answers) {
        assert.equal(s.ids[a.end], IM_END, `${task}: an answer ends with <|im_end|>`);
        assert.equal(s.weights[a.start], 1);
        assert.ok(decode(s.ids.subarray(a.start + 1, a.end)).length > 3);
      }
    }
  }
});

test('subword samples (smollm2:8192): every task fits its length, fills the step, and its answers decode to the text', () => {
  const v = smolLM2Vocab(8192);
  const tok = new Tokenizer(v.tokenizerJson() as Record<string, unknown>, v.tokenizerConfig() as Record<string, unknown>);
  const rng = new Rng(6);
  for (const task of [...TASKS, 'text' as const]) {
    for (const length of [256, 2048]) {
      const s = makeSample(rng, corpus, 'train', task, length, v);
      assert.ok(s.ids.length <= length + 1, `${task} ${length}: ${s.ids.length} ids`);
      assert.ok(s.ids.every((i) => i >= 0 && i < v.size));
      if (task === 'text') continue;
      for (const a of s.answers) {
        assert.equal(s.ids[a.end], v.imEnd, `${task}: an answer ends with <|im_end|>`);
        assert.ok(tok.decode(Array.from(s.ids.subarray(a.start + 1, a.end))).length > 3);
      }
    }
  }
  const batch = trainingBatch(corpus, 1, 3, 0.5, 8192, [{ until: 2, lengths: [256] }], 256, v);
  assert.ok(batch.tokens > 8192 - 64 && batch.tokens <= 8192, `${batch.tokens} tokens in a step of 8192`);
  const enc = encodeDialogue(
    { task: 'passkey', context: 'The pass key is 123.', turns: [{ question: 'What is it?', answer: 'It is 123.' }] },
    v,
  );
  const chat = tok.applyChatTemplate([{ role: 'user', content: 'The pass key is 123.\n\nWhat is it?' }], { addGenerationPrompt: true });
  const prompt = encodePrompt('The pass key is 123.', 'What is it?', v);
  assert.equal(tok.decode(Array.from(prompt)), chat);
  assert.deepEqual(Array.from(prompt), Array.from(enc.ids.subarray(0, prompt.length)));
  assert.equal(tok.decode(Array.from(enc.ids.subarray(prompt.length))), 'It is 123.<|im_end|>\n');
});

test('encoding: ChatML as the tokenizer template, weights shifted to targets', () => {
  const enc = encodeDialogue({ task: 'passkey', context: 'ctx', turns: [{ question: 'q?', answer: 'A.' }] });
  const text = Array.from(enc.ids, (i) => (i === IM_START ? '<|im_start|>' : i === IM_END ? '<|im_end|>' : String.fromCharCode(i))).join(
    '',
  );
  assert.equal(text, '<|im_start|>user\nctx\n\nq?<|im_end|>\n<|im_start|>assistant\nA.<|im_end|>\n');
  const a = enc.answers[0];
  assert.equal(decode(enc.ids.subarray(a.start + 1, a.end + 1)), 'A.');
  assert.deepEqual(Array.from(enc.weights.subarray(a.start, a.end)), [1, 1, 1]);
  assert.equal(enc.weights[a.end], 0.05000000074505806);
  const prompt = encodePrompt('ctx', 'q?');
  assert.deepEqual(Array.from(prompt), Array.from(enc.ids.subarray(0, prompt.length)));
});

test('needles go to sentence boundaries at their depths', () => {
  const text = 'One. Two. Three. Four. Five.';
  assert.equal(insertAtDepths(text, [{ sentence: 'N.', depth: 0 }]), 'N. One. Two. Three. Four. Five.');
  assert.equal(insertAtDepths(text, [{ sentence: 'N.', depth: 1 }]), 'One. Two. Three. Four. Five. N. ');
  assert.equal(insertAtDepths(text, [{ sentence: 'N.', depth: 0.5 }]), 'One. Two. Three. N. Four. Five.');
  const s = niahSample(corpus, 1024, 0.5);
  assert.ok(s.ids.length <= 1025);
  assert.ok(decode(s.ids).includes(NIAH_NEEDLE));
});

function tinyOptions(out: string, steps: number): PretrainOptions {
  return {
    ...DEFAULT_PRETRAIN,
    out,
    exportDir: null,
    ...TINY_PRETRAIN,
    steps,
    warmup: 3,
    checkpointEvery: 1000,
    curriculum: TINY_CURRICULUM,
  };
}

test('pretrain (tiny): the loss falls and the model folder loads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-pretrain-'));
  try {
    const r = await pretrain(tinyOptions(dir, 30), false, () => {}, corpus);
    assert.ok(r.finalLoss < r.firstLoss - 1, `loss ${r.firstLoss} -> ${r.finalLoss}`);
    const cfg = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    assert.equal(cfg.numKvHeads, 2);
    assert.equal(cfg.vocabSize, 259);
    const header = readSafetensorsHeader(join(dir, 'model.safetensors'));
    assert.ok(header.tensors.has('model.layers.1.mlp.down_proj.weight'));
    const tok = Tokenizer.fromDir(dir);
    assert.deepEqual(tok.encode('hi'), [104, 105]);
    assert.equal(tok.eosTokenId, IM_END);
    const chat = tok.applyChatTemplate([{ role: 'user', content: 'ctx\n\nq?' }], { addGenerationPrompt: true });
    assert.deepEqual(tok.encode(chat), Array.from(encodePrompt('ctx', 'q?')));
    assert.ok(readFileSync(join(dir, 'loss.svg'), 'utf8').startsWith('<svg'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkpoint and resume give the same parameters as an uninterrupted run', async () => {
  const a = mkdtempSync(join(tmpdir(), 'kvevict-a-')),
    b = mkdtempSync(join(tmpdir(), 'kvevict-b-'));
  try {
    await pretrain(tinyOptions(a, 6), false, () => {}, corpus);
    await pretrain({ ...tinyOptions(b, 6), timeLimit: 1e-9 }, false, () => {}, corpus); // stops after one step
    await pretrain(tinyOptions(b, 6), true, () => {}, corpus);
    const wa = readFileSync(join(a, 'model.safetensors')),
      wb = readFileSync(join(b, 'model.safetensors'));
    assert.ok(wa.equals(wb), 'weights differ after resume');
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('checkpoints are safe: truncated, corrupted or edited files are refused in one line; the run and its log are protected', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-ckpt-'));
  try {
    await pretrain({ ...tinyOptions(dir, 6), checkpointEvery: 2, stopAfter: 4 }, false, () => {}, corpus);
    const file = join(dir, 'checkpoint.bin');
    const good = readFileSync(file);
    const hl = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.subarray(8, 8 + hl).toString('utf8')) as Record<string, unknown>;
    assert.equal(header.step, 4);
    const withHeader = (edit: (h: Record<string, unknown>) => void) => {
      const h = structuredClone(header);
      edit(h);
      const hb = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      return Buffer.concat([len, hb, good.subarray(8 + hl)]);
    };
    const flipped = Buffer.from(good);
    flipped[good.length - 100] ^= 0x40;
    const cases: [string, Buffer, RegExp][] = [
      ['cut after its header', good.subarray(0, 8 + hl), /truncated/],
      ['cut in half', good.subarray(0, Math.floor(good.length / 2)), /truncated/],
      ['one byte flipped in the tensors', flipped, /checksum/],
      ['a corrupt header', Buffer.concat([good.subarray(0, 8), Buffer.from('{"step": 4,'), good.subarray(19)]), /not valid JSON/],
      [
        'step -5',
        withHeader((h) => {
          h.step = -5;
        }),
        /step -5 is not a whole number/,
      ],
      [
        'step "x"',
        withHeader((h) => {
          h.step = 'x';
        }),
        /step "x"/,
      ],
      ['an empty file', Buffer.alloc(0), /0 bytes/],
    ];
    for (const [what, bytes, why] of cases) {
      writeFileSync(file, bytes);
      await assert.rejects(
        pretrain(tinyOptions(dir, 6), true, () => {}, corpus),
        (e: Error) => {
          assert.equal(e.name, 'KvevictError', `${what}: ${e.message}`);
          assert.match(e.message, why, what);
          assert.ok(!e.message.includes('\n') && e.message.length < 300, `${what}: one short line`);
          return true;
        },
        what,
      );
    }
    writeFileSync(file, good);
    await assert.rejects(
      pretrain(tinyOptions(dir, 3), true, () => {}, corpus),
      /at step 4, past --steps 3/,
    );
    await assert.rejects(
      pretrain(tinyOptions(dir, 6), false, () => {}, corpus),
      /already holds a checkpoint; continue it with --resume/,
    );
    // resumed after a crash past the checkpoint: the log holds every step once
    writeFileSync(
      join(dir, 'log.jsonl'),
      readFileSync(join(dir, 'log.jsonl'), 'utf8') + JSON.stringify({ step: 5, tokens: 1, seconds: 1, loss: 1 }) + '\n',
    );
    await pretrain(tinyOptions(dir, 6), true, () => {}, corpus);
    const steps = readFileSync(join(dir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss?: number })
      .filter((r) => r.loss !== undefined)
      .map((r) => r.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
    await pretrain({ ...tinyOptions(dir, 2), force: true }, false, () => {}, corpus);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--continue-from: a run goes on from its exported folder alone (weights, step, log), moments restarted under a re-warm-up', async () => {
  const a = mkdtempSync(join(tmpdir(), 'kvevict-a-')),
    b = mkdtempSync(join(tmpdir(), 'kvevict-b-'));
  try {
    const exportDir = join(a, 'export');
    await pretrain({ ...tinyOptions(a, 8), exportDir, stopAfter: 4 }, false, () => {}, corpus);
    const lines: string[] = [];
    const r = await pretrain({ ...tinyOptions(b, 8), continueFrom: exportDir }, false, (l) => lines.push(l), corpus);
    assert.ok(
      lines.some((l) => /continued from .* at step 4/.test(l)),
      lines.join('\n'),
    );
    const steps = r.history.filter((h) => h.loss !== undefined).map((h) => h.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
    // the first steps after the restart re-warm: a twentieth of the schedule's rate, then two twentieths
    const lr = (step: number) => r.history.find((h) => h.step === step && h.lr !== undefined)!.lr!;
    const sched = { peak: tinyOptions(b, 8).lr, warmup: tinyOptions(b, 8).warmup, total: 8, minRatio: DEFAULT_PRETRAIN.minLrRatio };
    assert.ok(Math.abs(lr(5) - learningRate(sched, 4) / 20) < 1e-12 && Math.abs(lr(6) - (2 * learningRate(sched, 5)) / 20) < 1e-12);
    // the loss goes on from the trained weights, not from a fresh start
    assert.ok(r.firstLoss < r.history.find((h) => h.step === 1)!.loss! - 0.2, `first loss after continuing ${r.firstLoss}`);
    await assert.rejects(
      pretrain({ ...tinyOptions(join(b, 'x'), 8), hidden: 64, continueFrom: exportDir }, false, () => {}, corpus),
      /--continue-from: option hidden was 32/,
    );
    await assert.rejects(
      pretrain({ ...tinyOptions(join(b, 'y'), 8), continueFrom: b + '-none' }, false, () => {}, corpus),
      /train-state\.json: not found/,
    );
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('--stop-after ends a run early on its own schedule; --init-from starts from a model folder', async () => {
  const a = mkdtempSync(join(tmpdir(), 'kvevict-a-')),
    b = mkdtempSync(join(tmpdir(), 'kvevict-b-')),
    c = mkdtempSync(join(tmpdir(), 'kvevict-c-'));
  try {
    await pretrain(tinyOptions(a, 6), false, () => {}, corpus);
    const r = await pretrain({ ...tinyOptions(b, 6), stopAfter: 4 }, false, () => {}, corpus);
    assert.equal(r.history.filter((h) => h.loss !== undefined).length, 4);
    await pretrain(tinyOptions(b, 6), true, () => {}, corpus);
    assert.ok(
      readFileSync(join(a, 'model.safetensors')).equals(readFileSync(join(b, 'model.safetensors'))),
      'a stopped and resumed run differs',
    );
    // a one-step run from the trained folder starts where that folder is: its first loss is the trained model's
    const fresh = await pretrain({ ...tinyOptions(c, 1), seed: 2 }, false, () => {}, corpus);
    const tuned = await pretrain({ ...tinyOptions(join(c, 'x'), 1), seed: 2, initFrom: a }, false, () => {}, corpus);
    assert.ok(tuned.firstLoss < fresh.firstLoss - 0.05, `init-from loss ${tuned.firstLoss} vs fresh ${fresh.firstLoss}`);
    assert.throws(
      () => initFromModel(a, { ...modelConfigOf(tinyOptions(c, 1)), hiddenSize: 64 }, initParams(modelConfigOf(tinyOptions(c, 1)), 1)),
      /--init-from .*hiddenSize/,
    );
  } finally {
    for (const d of [a, b, c]) rmSync(d, { recursive: true, force: true });
  }
});

test('held-out evaluation of a model folder: greedy answers through the engine, scores in range', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-card-'));
  try {
    await pretrain(tinyOptions(dir, 3), false, () => {}, corpus);
    const { evaluateCard, cardTables } = await import('../src/train/card-eval.js');
    const e = await evaluateCard(
      dir,
      { lengths: [200], depths: [50], perTask: 1, taskLength: 200, perplexityTokens: 1024, streamingKeep: 0.1, maxNewTokens: 8 },
      corpus,
    );
    assert.equal(e.niah.length, 1);
    for (const r of e.niah) for (const v of [r.recall, r.exact, r.streamingRecall]) assert.ok(v >= 0 && v <= 1);
    assert.ok(Object.keys(e.tasks).includes('niah_multikey') && !Object.keys(e.tasks).includes('repeat'));
    // an untrained byte model is close to uniform over 259 tokens
    assert.ok(e.perplexity > 50 && e.perplexity < 400, `perplexity ${e.perplexity}`);
    assert.match(cardTables(e), /\| 200 \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('held-out targets suite: needle cells by length and depth with intervals, perplexity per token and per byte, targets listed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-targets-'));
  try {
    await pretrain(tinyOptions(dir, 3), false, () => {}, corpus);
    const { evaluateReference, refEvalTables } = await import('../src/train/ref-eval.js');
    const sink = { write: () => true };
    const e = await evaluateReference(dir, {
      needleLengths: [160, 200, 99999],
      needleDepths: [0, 50, 100],
      rulerLengths: [],
      rulerSamples: 1,
      streamingKeep: 0.1,
      perplexityTokens: 600,
      out: join(dir, 'rows'),
      progress: sink,
      log: sink,
    });
    assert.deepEqual(Object.keys(e.niah), ['160', '200'], 'lengths past the model context are left out');
    for (const c of Object.values(e.niah)) {
      assert.equal(c.n, 3);
      assert.deepEqual(Object.keys(c.byDepth), ['0', '50', '100']);
      assert.ok(c.ci95[0] <= c.score && c.score <= c.ci95[1]);
    }
    // an untrained byte model: about ln(259) nats per token, 8 bits per byte
    assert.ok(e.perplexity.bitsPerByte > 5 && e.perplexity.bitsPerByte < 9, `${e.perplexity.bitsPerByte} bits per byte`);
    assert.deepEqual(
      e.targets.map((t) => t.name),
      ['needle 160: lowest depth', 'needle 200: lowest depth'],
    );
    assert.match(refEvalTables(e), /\| needle 200: lowest depth \| [\d.]+ \| >= 98 \| no \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrain --curriculum parses stages and task mixes, and rejects bad ones', async () => {
  const { parseCurriculum } = await import('../src/cli/pretrain.js');
  assert.deepEqual(parseCurriculum('0.5:128,256@copy;1.01:512'), [
    { until: 0.5, lengths: [128, 256], mix: 'copy' },
    { until: 1.01, lengths: [512] },
  ]);
  assert.throws(() => parseCurriculum('0.5:abc'), /--curriculum/);
  assert.throws(() => parseCurriculum('0.5:128@nosuchmix'), /--curriculum mix/);
});

test('copy-heavy stages draw only copying and lookup tasks', () => {
  const batch = trainingBatch(corpus, 1, 0, 0.1, 4096, [{ until: 1.01, lengths: [256], mix: 'copy' }], 256);
  for (const s of batch.samples) assert.ok(['repeat', 'niah_multikey', 'niah_place', 'passkey', 'cloze'].includes(s.task), s.task);
});

test('time left: the median recent step of the log, not the first slow steps after a resume nor the evaluation pauses', async () => {
  const { secondsPerStep } = await import('../src/train/pretrain.js');
  const history = Array.from({ length: 60 }, (_, i) => ({ step: i + 1, tokens: 0, seconds: 2 * (i + 1) + (i >= 30 ? 40 : 0), loss: 1 }));
  assert.equal(secondsPerStep(history, 99), 2, 'a 40 s evaluation gap and the rest at 2 s per step');
  assert.equal(secondsPerStep(history.slice(0, 3), 99), 99, 'too few steps: the fallback');
});
