import { floatWeights } from '../../src/model/weights.js';
import { ByteCursor } from './byte-cursor.js';
/**
 * Seeded mutation campaigns over the files kvevict reads: a safetensors model, a GGUF model, a pretrain
 * checkpoint, a soft-token file and a results file. Every mutated file must either be refused with a
 * KvevictError of one short line, or load to exactly what the original loads to; anything else (another
 * exception, a case slower than the limit, a different result) is a failure. The tests run a few hundred
 * cases of each; `npm run fuzz -- --cases N` runs longer campaigns.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvevictError } from '../../src/errors.js';
import { loadModelDir } from '../../src/model/load.js';
import { writeGguf } from '../../src/model/gguf.js';
import { loadSoftTokens, modelHash, saveSoftTokens } from '../../src/press/queries/soft-tokens-file.js';
import { checkLookaheadFor, loadLookaheadModules, saveLookaheadModules } from '../../src/press/queries/lookahead-adapter-file.js';
import { loraShape } from '../../src/model/appended-rows.js';
import { LlamaModel } from '../../src/model/llama.js';
import { jsKernels } from '../../src/kernels/js.js';
import { prefill } from '../../src/generate/pipeline.js';
import { loadCompressedContext, saveCompressedContext } from '../../src/generate/context-file.js';
import { readRowsWithProblems, rowCheck, type ResultRow } from '../../src/eval/results.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { AdamW } from '../../src/train/adamw.js';
import { param } from '../../src/autograd/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { tinyRawConfig, writeRandomModelDir } from './random-model.js';

export type FuzzKind = 'safetensors' | 'gguf' | 'checkpoint' | 'soft-tokens' | 'lookaheadkv' | 'context' | 'results';
export const FUZZ_KINDS: FuzzKind[] = ['safetensors', 'gguf', 'checkpoint', 'soft-tokens', 'lookaheadkv', 'context', 'results'];

export interface FuzzReport {
  kind: FuzzKind;
  cases: number;
  refused: number;
  identical: number;
  failures: string[];
}

const digest = (parts: (ArrayBufferView | string)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return h.digest('hex');
};

interface Target {
  /** the file to mutate and its original bytes */
  file: string;
  original: Buffer;
  /** where structure lives (header bytes), so that flips hit what a loader must check */
  headerEnd: number;
  /** load the file and reduce what it gives to a digest */
  load(): string;
  /** results files: every row read must be one of the originals (a deleted line legitimately removes one) */
  subset?: boolean;
}

/** A safetensors file as a target: its bytes as written, the header (length word and JSON) to fuzz, and its loader. */
function safetensorsTarget(file: string, load: () => string): Target {
  const original = readFileSync(file);
  return { file, original, headerEnd: 8 + Number(original.readBigUInt64LE(0)), load };
}

/** A file whose digest covers every byte: a mutation anywhere must be refused. */
function wholeFileTarget(file: string, load: () => string): Target {
  const original = readFileSync(file);
  return { file, original, headerEnd: original.length, load };
}

function modelDir(root: string): string {
  const dir = join(root, 'model');
  writeRandomModelDir(dir, tinyRawConfig('llama', { vocab_size: 259, num_hidden_layers: 1 }), { tokenizerFrom: 'bytes' });
  return dir;
}

function weightsDigest(dir: string): string {
  const m = loadModelDir(dir);
  const w = floatWeights(m.weights);
  const arrays: Float32Array[] = [w.embed, w.finalNorm, w.lmHead];
  for (const l of m.weights.layers) arrays.push(...Object.values(l).filter((a): a is Float32Array => a instanceof Float32Array));
  return digest([...arrays, JSON.stringify(m.config), JSON.stringify(m.tokenizer.encode('Hello, world 123'))]);
}

function makeTarget(kind: FuzzKind, root: string): Target {
  if (kind === 'safetensors') {
    const dir = modelDir(root);
    const file = join(dir, 'model.safetensors');
    return safetensorsTarget(file, () => weightsDigest(dir));
  }
  if (kind === 'gguf') {
    const dir = modelDir(root);
    const m = loadModelDir(dir);
    const file = join(root, 'model.gguf');
    writeGguf(file, m.config, m.weights, m.tokenizer);
    const original = readFileSync(file);
    // the header runs to the first tensor byte: past the last metadata and tensor info
    const headerEnd =
      original.length -
      [
        m.weights.embed,
        m.weights.finalNorm,
        ...m.weights.layers.flatMap((l) => Object.values(l).filter((a): a is Float32Array => a instanceof Float32Array)),
      ].reduce((a, x) => a + (x as Float32Array).byteLength, 0);
    return { file, original, headerEnd: Math.max(24, headerEnd), load: () => weightsDigest(file) };
  }
  if (kind === 'checkpoint') {
    const file = join(root, 'checkpoint.bin');
    const rng = new Rng(3);
    const make = () => [param(rng.normalArray(64, 1), [8, 8], 'w'), param(rng.normalArray(8, 1), [8], 'b')];
    const params = make();
    const opt = new AdamW(params);
    opt.m.forEach((a) => a.set(rng.normalArray(a.length, 0.1)));
    opt.t = 7;
    saveCheckpoint(file, params, opt, {
      step: 7,
      options: { seed: 1 },
      tokensSeen: 700,
      elapsedSeconds: 1.5,
      history: [{ step: 7, loss: 1 }],
    });
    return wholeFileTarget(file, () => {
      const ps = [param(new Float32Array(64), [8, 8], 'w'), param(new Float32Array(8), [8], 'b')];
      const o = new AdamW(ps);
      const meta = loadCheckpoint(file, ps, o);
      return digest([...ps.map((p) => p.data), ...o.m, ...o.v, JSON.stringify(meta), String(o.t)]);
    });
  }
  if (kind === 'soft-tokens') {
    const file = join(root, 'soft.safetensors');
    saveSoftTokens(file, { embeddings: new Rng(4).normalArray(4 * 16, 1), count: 4, hiddenSize: 16, modelHash: 'a'.repeat(64) });
    return safetensorsTarget(file, () => {
      const s = loadSoftTokens(file);
      return digest([s.embeddings, String(s.count), String(s.hiddenSize), s.modelHash]);
    });
  }
  if (kind === 'lookaheadkv') {
    const dir = modelDir(root);
    const m = loadModelDir(dir);
    const cfg = m.config;
    const file = join(root, 'lookaheadkv.safetensors');
    const rng = new Rng(5);
    const lora = m.weights.layers.map(() =>
      Object.fromEntries(
        (['q', 'down'] as const).map((t) => {
          const [out, inDim] = loraShape(cfg, t);
          return [t, { a: rng.normalArray(2 * inDim, 0.1), b: rng.normalArray(out * 2, 0.1) }];
        }),
      ),
    );
    const base = { embeddings: rng.normalArray(3 * cfg.hiddenSize, 1), count: 3, hiddenSize: cfg.hiddenSize, numLayers: cfg.numLayers };
    saveLookaheadModules(file, { ...base, rank: 2, alpha: 4, targets: ['q', 'down'], lora, modelHash: modelHash(cfg, m.weights) }, (t) =>
      loraShape(cfg, t),
    );
    return safetensorsTarget(file, () => {
      const x = loadLookaheadModules(file);
      checkLookaheadFor(x, cfg, m.weights);
      const arrays = x.lora.flatMap((layer) => Object.values(layer).flatMap((p) => [p.a, p.b]));
      return digest([x.embeddings, ...arrays, JSON.stringify([x.count, x.rank, x.alpha, x.targets, x.modelHash])]);
    });
  }
  if (kind === 'context') {
    const dir = modelDir(root);
    const m = loadModelDir(dir);
    const model = new LlamaModel(m.config, m.weights, jsKernels);
    const tokens = Int32Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 250));
    const prefilled = prefill(model, tokens, { record: [] });
    const plan = prefilled.cache.layers.map((layer) => layer.map((h) => h.positions.slice(0, h.length).filter((p) => p % 3 !== 1)));
    prefilled.cache.retainAll(plan);
    const ctx = { ...prefilled, plan, fullCacheBytes: 0, cacheBytes: prefilled.cache.bytes, selectMs: 0 };
    const file = join(root, 'context.kvc');
    saveCompressedContext(file, model, ctx, { tokens, press: 'snapkv', pressOptions: {}, budget: 27, chat: false });
    return wholeFileTarget(file, () => {
      const x = loadCompressedContext(file, model);
      const heads = x.context.cache.layers.flatMap((layer) =>
        layer.flatMap((h) => [
          h.positions.subarray(0, h.length),
          h.keyData.subarray(0, h.length * h.headDim),
          h.valueData.subarray(0, h.length * h.headDim),
        ]),
      );
      return digest([
        x.origin.tokens,
        x.context.lastLogits,
        ...heads,
        JSON.stringify([x.context.nextPosition, x.origin.press, x.origin.budget, x.origin.chat]),
      ]);
    });
  }
  const dir = join(root, 'results');
  const file = join(dir, 'results.jsonl');
  const rows = Array.from({ length: 6 }, (_, i) => {
    const row = {
      key: `k${i}`,
      dataset: 'niah',
      task: 'niah',
      case: `c${i}`,
      press: 'snapkv',
      options: {},
      budget: 64,
      mode: 'query-aware',
      score: i * 10,
      prediction: 'x',
      answers: ['x'],
      fidelity: { oracle_hit: null, attention_recall: null, top1: null, kl: null },
    } as unknown as ResultRow;
    return JSON.stringify({ ...row, check: rowCheck(row) });
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, rows.join('\n') + '\n');
  return {
    file,
    original: readFileSync(file),
    headerEnd: 0,
    subset: true,
    load: () => JSON.stringify(readRowsWithProblems(dir).rows.map((r) => JSON.stringify(r))),
  };
}

/** One seeded mutation of `t.original`. */
function mutate(rng: Rng, t: Target, kind: FuzzKind): Buffer {
  const b = Buffer.from(t.original);
  switch (rng.int(kind === 'results' ? 4 : 6)) {
    case 0: // truncation
      return b.subarray(0, rng.int(b.length));
    case 1: {
      // byte flips (in the header where data bytes carry no structure)
      const c = Buffer.from(b);
      for (let i = 0, n = 1 + rng.int(4); i < n; i++) {
        // results rows carry their own digest, so a flip anywhere in them, values included, must be caught
        const at =
          kind === 'results'
            ? rng.next() < 0.5
              ? structuralResultsByte(rng, c)
              : rng.int(c.length)
            : kind === 'checkpoint'
              ? rng.int(c.length)
              : kind === 'gguf'
                ? rng.pick(ggufStructure(t.original)).at + rng.int(4)
                : // a model's header has no free text the loader would not check: any byte of it (a soft-token file's
                  // model_hash is free text, so there only the structure)
                  kind === 'safetensors' && rng.next() < 0.5
                  ? 8 + rng.int(t.headerEnd - 8)
                  : structuralJsonByte(rng, c, t.headerEnd);
        c[at] ^= 1 << rng.int(8);
      }
      return c;
    }
    case 2: {
      // a line or a range repeated, removed or cut (JSONL) / a run of bytes zeroed (binary)
      if (kind === 'results') {
        const lines = b.toString('utf8').split('\n');
        const i = rng.int(lines.length);
        const op = rng.int(3);
        if (op === 0) lines.splice(i, 1);
        else if (op === 1) lines.splice(i, 0, lines[i]);
        else lines[i] = lines[i].slice(0, rng.int(lines[i].length + 1));
        return Buffer.from(lines.join('\n'));
      }
      const c = Buffer.from(b);
      if (kind === 'gguf') {
        // a GGUF key is free text: zeroing it makes another valid file, so only structural fields are zeroed
        const f = rng.pick(ggufStructure(b));
        c.fill(0, f.at, f.at + 1 + rng.int(f.size));
        return c;
      }
      const at = kind === 'checkpoint' ? rng.int(c.length) : structuralJsonByte(rng, c, t.headerEnd),
        len = 1 + rng.int(16);
      c.fill(0, at, Math.min(c.length, at + len));
      return c;
    }
    case 3: {
      // JSON-level edits of an entry
      if (kind === 'gguf') return ggufFieldEdit(rng, b);
      return jsonEdit(rng, b, kind);
    }
    case 4: {
      // the header length (safetensors, checkpoints) / a count (GGUF)
      const c = Buffer.from(b);
      const deltas = [-1, 1, -8, 8, 1 << 20, -(1 << 20)];
      if (kind === 'gguf') {
        const at = rng.pick([8, 16]);
        c.writeBigUInt64LE(BigInt(Math.max(0, Number(c.readBigUInt64LE(at)) + rng.pick(deltas))), at);
      } else {
        c.writeBigUInt64LE(BigInt(Math.max(0, Number(c.readBigUInt64LE(0)) + rng.pick(deltas))), 0);
      }
      return c;
    }
    default: // bytes appended
      return Buffer.concat([b, Buffer.alloc(1 + rng.int(64), rng.int(256))]);
  }
}

/** A byte of JSON punctuation or a field name in a results file (digits inside values are data, not structure). */
function structuralResultsByte(rng: Rng, c: Buffer): number {
  const s = c.toString('latin1');
  const at: number[] = [];
  for (let i = 0; i < s.length; i++) if ('{}[]":,'.includes(s[i])) at.push(i);
  return at.length ? rng.pick(at) : rng.int(c.length);
}

const ODD_VALUES: unknown[] = [null, -1, 1.5, 'x', [], {}, 2 ** 53, 1e308, true, '', [1, 2, 3], -0];

function jsonEdit(rng: Rng, b: Buffer, kind: FuzzKind): Buffer {
  if (kind === 'results') {
    const lines = b.toString('utf8').split('\n');
    const i = rng.int(lines.length - 1);
    try {
      const o = JSON.parse(lines[i]) as Record<string, unknown>;
      const keys = Object.keys(o);
      o[rng.pick(keys)] = rng.pick(ODD_VALUES);
      lines[i] = JSON.stringify(o);
    } catch {
      lines[i] = '{';
    }
    return Buffer.from(lines.join('\n'));
  }
  const hl = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + hl).toString('utf8')) as Record<string, unknown>;
  const keys = Object.keys(header);
  const k = rng.pick(keys);
  const v = header[k];
  if (v && typeof v === 'object' && !Array.isArray(v) && rng.next() < 0.7) {
    const inner = v as Record<string, unknown>;
    const ik = Object.keys(inner);
    if (ik.length) inner[rng.pick(ik)] = rng.pick(ODD_VALUES);
  } else if (rng.next() < 0.2) {
    delete header[k];
  } else {
    header[k] = rng.pick(ODD_VALUES);
  }
  const hb = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return Buffer.concat([len, hb, b.subarray(8 + hl)]);
}

/** Where a GGUF header keeps its structure: counts, lengths, value and element types, dims, tensor types and offsets. */
function ggufStructure(b: Buffer): { at: number; size: 4 | 8 }[] {
  const out: { at: number; size: 4 | 8 }[] = [
    { at: 8, size: 8 },
    { at: 16, size: 8 },
  ];
  const c = new ByteCursor(b, 24);
  const { u32, u64 } = c;
  const str = (mark: boolean) => {
    if (mark) out.push({ at: c.p, size: 8 });
    const n = u64(); // read before adding: `c.p += u64()` would add to the old position
    c.p += n;
  };
  const scalarSize: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const nTensors = Number(b.readBigUInt64LE(8)),
    nKv = Number(b.readBigUInt64LE(16));
  for (let i = 0; i < nKv; i++) {
    str(true);
    out.push({ at: c.p, size: 4 });
    const type = u32();
    if (type === 8) str(true);
    else if (type === 9) {
      out.push({ at: c.p, size: 4 });
      const et = u32();
      out.push({ at: c.p, size: 8 });
      const n = u64();
      for (let j = 0; j < n; j++)
        if (et === 8) str(j % 50 === 0);
        else c.p += scalarSize[et];
    } else c.p += scalarSize[type];
  }
  for (let i = 0; i < nTensors; i++) {
    str(true);
    out.push({ at: c.p, size: 4 });
    const nd = u32();
    for (let j = 0; j < nd; j++) {
      out.push({ at: c.p, size: 8 });
      c.p += 8;
    }
    out.push({ at: c.p, size: 4 });
    c.p += 4;
    out.push({ at: c.p, size: 8 });
    c.p += 8;
  }
  return out;
}

/** A GGUF structural field set to an odd value. */
function ggufFieldEdit(rng: Rng, b: Buffer): Buffer {
  const c = Buffer.from(b);
  const f = rng.pick(ggufStructure(b));
  if (f.size === 4) c.writeUInt32LE(rng.pick([0, 1, 3, 9, 13, 33, 0xffffffff, 2 ** 31, 12345]) >>> 0, f.at);
  else {
    const old = Number(c.readBigUInt64LE(f.at));
    c.writeBigUInt64LE(BigInt(Math.max(0, rng.pick([0, 1, 2 ** 40, 2 ** 53 - 1, 1 << 20, old + 1, old - 1, old + 32, old * 2]))), f.at);
  }
  return c;
}

/** A byte of a safetensors JSON header that is punctuation or part of a key (a value's own characters are data). */
function structuralJsonByte(rng: Rng, c: Buffer, end: number): number {
  const s = c.subarray(0, end).toString('latin1');
  const at: number[] = [];
  let inKey = false;
  for (let i = 8; i < s.length; i++) {
    if ('{}[]:,'.includes(s[i])) at.push(i);
    if (s[i] === '"') {
      at.push(i);
      inKey = s.slice(i + 1).search(/"\s*:/) === s.slice(i + 1).indexOf('"');
    } else if (inKey) at.push(i);
  }
  return at.length ? rng.pick(at) : 8 + rng.int(Math.max(1, end - 8));
}

/** Run `cases` mutations of one kind of file. */
export function fuzzCampaign(kind: FuzzKind, cases: number, seed = 1, caseLimitMs = 5000): FuzzReport {
  const root = mkdtempSync(join(tmpdir(), `kvevict-fuzz-${kind}-`));
  const report: FuzzReport = { kind, cases, refused: 0, identical: 0, failures: [] };
  const stderr = process.stderr.write.bind(process.stderr);
  try {
    const t = makeTarget(kind, root);
    const want = t.load();
    const originalRows = t.subset ? new Set(JSON.parse(want) as string[]) : null;
    const rng = new Rng(seed * 7919 + FUZZ_KINDS.indexOf(kind));
    // loaders may warn (e.g. unused tensors): those lines are expected, not failures
    process.stderr.write = (() => true) as typeof process.stderr.write;
    for (let i = 0; i < cases; i++) {
      const bytes = mutate(rng, t, kind);
      writeFileSync(t.file, bytes);
      const t0 = performance.now();
      try {
        const got = t.load();
        if (originalRows) {
          const rows = JSON.parse(got) as string[];
          if (rows.some((r) => !originalRows.has(r))) report.failures.push(`case ${i}: a row that is not one of the originals was read`);
          else report.identical++;
        } else if (got !== want) {
          report.failures.push(`case ${i}: loaded without an error but gives a different result`);
          if (process.env.KVEVICT_FUZZ_KEEP) writeFileSync(join(process.env.KVEVICT_FUZZ_KEEP, `${kind}-${i}.bin`), bytes);
        } else {
          report.identical++;
        }
      } catch (e) {
        if (e instanceof KvevictError && !e.message.includes('\n') && e.message.length < 500) report.refused++;
        else
          report.failures.push(
            `case ${i}: ${e instanceof KvevictError ? 'a long or multi-line message' : `${(e as Error).name}: ${(e as Error).message.slice(0, 200)}`}`,
          );
      }
      const ms = performance.now() - t0;
      if (ms > caseLimitMs) report.failures.push(`case ${i}: took ${ms.toFixed(0)} ms`);
    }
  } finally {
    process.stderr.write = stderr;
    rmSync(root, { recursive: true, force: true });
  }
  return report;
}

// npm run fuzz -- [--cases N] [--seed S] [--kind K]
if (process.argv[1]?.endsWith('fuzz.js')) {
  const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
  };
  const cases = Number(arg('cases', '1000')),
    seed = Number(arg('seed', String(Date.now() % 100000)));
  const kinds = arg('kind', 'all') === 'all' ? FUZZ_KINDS : [arg('kind', 'all') as FuzzKind];
  let failed = 0;
  for (const k of kinds) {
    const t0 = Date.now();
    const r = fuzzCampaign(k, cases, seed);
    failed += r.failures.length;
    process.stdout.write(
      `${k}: ${r.cases} cases (seed ${seed}): ${r.refused} refused in one line, ${r.identical} identical, ${r.failures.length} failures (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
    );
    for (const f of r.failures.slice(0, 20)) process.stdout.write(`  ${f}\n`);
  }
  process.exitCode = failed > 0 ? 1 : 0;
}
