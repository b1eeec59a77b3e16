/** A GGUF file as a model: its config, weights (kept quantized where the kernels run the type) and tokenizer. */
import { closeSync, openSync, readSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import type { ModelConfig } from '../config.js';
import { allocateWeights, emptyWeights, firstNonFiniteBf16, linearShape, type LinearName } from '../weights.js';
import { kernels } from '../../kernels/index.js';
import type { Tokenizer } from '../tokenizer.js';
import { Tokenizer as KvTokenizer, bpeModelJson, spmTokenizer } from '../tokenizer.js';
import { printable } from '../safetensors.js';
import type { MatrixData, Weights } from '../types.js';
import { Bf16Matrix, QuantMatrix } from '../../quant/formats.js';
import { GgmlType, GgufTokenType, blockFormat, ggmlTypeName, type GgufFile, type GgufTensorInfo, unpermuteQK } from './format.js';
import { ggufValue, need, needSize, readGguf, readGgufTensorF32, tensorBytes } from './read.js';
import { ggufArchitecture } from './write.js';

/** ModelConfig from GGUF metadata (architectures llama, qwen2, qwen3). */
export function ggufConfig(g: GgufFile): ModelConfig {
  const arch = ggufValue(g, 'general.architecture');
  if (arch !== 'llama' && arch !== 'qwen2' && arch !== 'qwen3')
    throw new KvevictError(`${g.file}: unsupported GGUF architecture ${JSON.stringify(arch)} (supported: llama, qwen2, qwen3)`);
  const hiddenSize = needSize(g, `${arch}.embedding_length`, 65536);
  const numHeads = needSize(g, `${arch}.attention.head_count`, 1024);
  const tokens = ggufValue(g, 'tokenizer.ggml.tokens');
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const vocabSize =
    (ggufValue(g, `${arch}.vocab_size`) as number | undefined) ?? embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0);
  const headDim = (ggufValue(g, `${arch}.attention.key_length`) as number | undefined) ?? hiddenSize / numHeads;
  const eos = ggufValue(g, 'tokenizer.ggml.eos_token_id');
  const bos = ggufValue(g, 'tokenizer.ggml.bos_token_id');
  const cfg: ModelConfig = {
    modelType: arch,
    hiddenSize,
    intermediateSize: needSize(g, `${arch}.feed_forward_length`, 1 << 18),
    numLayers: needSize(g, `${arch}.block_count`, 1024),
    numHeads,
    numKvHeads: (ggufValue(g, `${arch}.attention.head_count_kv`) as number | undefined) ?? numHeads,
    headDim,
    vocabSize,
    rmsNormEps: need(g, `${arch}.attention.layer_norm_rms_epsilon`),
    ropeTheta: (ggufValue(g, `${arch}.rope.freq_base`) as number | undefined) ?? 10000,
    ropeScaling: null,
    maxPositions: (ggufValue(g, `${arch}.context_length`) as number | undefined) ?? 4096,
    tieWordEmbeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    attentionBias: g.tensors.some((t) => t.name === 'blk.0.attn_q.bias'),
    qkNorm: g.tensors.some((t) => t.name === 'blk.0.attn_q_norm.weight'),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : [],
  };
  const bad = (what: string) => new KvevictError(`${g.file}: GGUF metadata: ${what}`);
  if (!Number.isInteger(cfg.numKvHeads) || cfg.numKvHeads < 1 || cfg.numHeads % cfg.numKvHeads !== 0)
    throw bad(`${arch}.attention.head_count_kv ${cfg.numKvHeads} must divide head_count ${cfg.numHeads}`);
  if (!Number.isInteger(cfg.headDim) || cfg.headDim % 2 !== 0 || cfg.headDim > 1024)
    throw bad(`the head size ${cfg.headDim} must be an even integer`);
  if (!Number.isInteger(cfg.vocabSize) || cfg.vocabSize < 1 || cfg.vocabSize > 1 << 22)
    throw bad(`vocabulary size ${cfg.vocabSize} must be an integer in 1..${1 << 22}`);
  if (!(cfg.rmsNormEps > 0 && cfg.rmsNormEps < 1))
    throw bad(`${arch}.attention.layer_norm_rms_epsilon ${cfg.rmsNormEps} must be in (0, 1)`);
  if (!(cfg.ropeTheta > 1)) throw bad(`${arch}.rope.freq_base ${cfg.ropeTheta} must be greater than 1`);
  if (!Number.isInteger(cfg.maxPositions) || cfg.maxPositions < 1)
    throw bad(`${arch}.context_length ${cfg.maxPositions} must be a positive integer`);
  const freqs = g.tensors.find((t) => t.name === 'rope_freqs.weight');
  if (freqs) {
    // Llama-3's scaling as convert_hf_to_gguf.py stores it: a divisor per rotary frequency
    if (freqs.type !== GgmlType.F32 || freqs.dims.length !== 1 || freqs.dims[0] !== cfg.headDim / 2)
      throw bad(
        `rope_freqs.weight must be F32 with ${cfg.headDim / 2} values (head size / 2), got ${ggmlTypeName(freqs.type)} [${freqs.dims}]`,
      );
    const f = Array.from(readGgufTensorF32(g, freqs));
    const at = f.findIndex((x) => !(x > 0 && Number.isFinite(x)));
    if (at >= 0) throw bad(`rope_freqs.weight[${at}] is ${f[at]}: every factor must be positive and finite`);
    cfg.ropeFreqFactors = f;
  }
  return cfg;
}

/**
 * Weights from a GGUF file written in llama.cpp's layout (undoing the Q/K permutation for "llama"). Matrices in
 * a block format stay in it (their rows reordered for the permutation; the bytes in one huge-page arena);
 * float ones are decoded to float32.
 */
export function ggufWeights(g: GgufFile, cfg: ModelConfig): Weights {
  for (const t of g.tensors) {
    if (t.dims.length === 1 && blockFormat(t.type))
      throw new KvevictError(
        `${g.file}: tensor ${printable(t.name)} is 1-D in ${ggmlTypeName(t.type)}; 1-D tensors must be F32, F16 or BF16`,
      );
  }
  const byName = new Map(g.tensors.map((t) => [t.name, t]));
  const arch = ggufArchitecture(cfg.modelType);
  const find = (name: string, shape: number[]): GgufTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new KvevictError(`${g.file}: missing tensor ${name}`);
    const want = [...shape].reverse();
    if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i]))
      throw new KvevictError(`${g.file}: tensor ${name} has dims [${t.dims}], expected [${want}]`);
    return t;
  };
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, headDim: d, vocabSize: vocab } = cfg;
  type Slot = [name: string, shape: number[], qkHeads: number, set: (w: Weights, m: MatrixData) => void, get: (w: Weights) => MatrixData];
  const matrices: Slot[] = [['token_embd.weight', [vocab, h], 0, (w, m) => (w.embed = m), (w) => w.embed]];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `blk.${l}.`;
    const at = (n: LinearName, file: string, heads = 0) =>
      matrices.push([p + file, linearShape(cfg, n), heads, (w, m) => (w.layers[l][n] = m), (w) => w.layers[l][n]]);
    at('q', 'attn_q.weight', H);
    at('k', 'attn_k.weight', Hkv);
    at('v', 'attn_v.weight');
    at('o', 'attn_output.weight');
    at('gate', 'ffn_gate.weight');
    at('up', 'ffn_up.weight');
    at('down', 'ffn_down.weight');
  }
  if (!cfg.tieWordEmbeddings) matrices.push(['output.weight', [vocab, h], 0, (w, m) => (w.lmHead = m), (w) => w.lmHead]);
  // block matrices stay in their blocks, BF16 and F16 ones in their bits
  const keptAsStored = (t: GgufTensorInfo) => blockFormat(t.type) !== undefined || t.type === GgmlType.BF16 || t.type === GgmlType.F16;
  const quantized = matrices.filter(([name, shape]) => keptAsStored(find(name, shape)));

  // all float32 / f16: packed as a safetensors load is (huge pages with the native kernels), each tensor decoded,
  // then copied in; with matrices kept as stored: those in one arena, the float ones in their own arrays
  const packed = quantized.length === 0;
  const w: Weights = packed ? allocateWeights(cfg) : emptyWeights(cfg);
  const fd = openSync(g.file, 'r');
  try {
    const arena = quantized.length ? quantArena(quantized.map(([name, shape]) => tensorBytes(find(name, shape), g.file))) : [];
    let qi = 0;
    for (const [name, shape, heads, set, getter] of matrices) {
      const get = (x: Weights) => getter(x) as Float32Array;
      const t = find(name, shape);
      const f = blockFormat(t.type);
      if (f || t.type === GgmlType.BF16 || t.type === GgmlType.F16) {
        const bytes = arena[qi++];
        readExactly(fd, g, t, bytes);
        if (heads > 0 && arch === 'llama') unpermuteRowBytes(bytes, shape[0], bytes.length / shape[0], heads);
        if (f) set(w, new QuantMatrix(f.type, shape[0], shape[1], bytes));
        else if (t.type === GgmlType.F16) {
          const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
          const bad = halves.findIndex((x) => (x & 0x7c00) === 0x7c00);
          if (bad >= 0)
            throw new KvevictError(`${g.file}: tensor ${name} holds a non-finite value at index ${bad}: weights must be finite`);
          set(w, halves);
        } else {
          const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
          const bad = firstNonFiniteBf16(bits);
          if (bad >= 0)
            throw new KvevictError(`${g.file}: tensor ${name} holds a non-finite value at index ${bad}: weights must be finite`);
          set(w, new Bf16Matrix(bits, shape[0], shape[1]));
        }
      } else {
        let x = readGgufTensorF32(g, t);
        if (heads > 0 && arch === 'llama') x = unpermuteQK(x, heads, shape[1]);
        if (packed) get(w).set(x);
        else set(w, x);
      }
    }
  } finally {
    closeSync(fd);
  }
  const vec = (name: string, shape: number[], heads = 0) => {
    let x = readGgufTensorF32(g, find(name, shape));
    if (heads > 0 && arch === 'llama') x = unpermuteQK(x, heads, 1);
    return x;
  };
  // the 1-D tensors (norms, biases): float32 in every file llama.cpp writes
  w.layers.forEach((L, l) => {
    const p = `blk.${l}.`;
    L.inputNorm = vec(p + 'attn_norm.weight', [h]);
    if (cfg.attentionBias) {
      L.qBias = vec(p + 'attn_q.bias', [H * d], H);
      L.kBias = vec(p + 'attn_k.bias', [Hkv * d], Hkv);
      L.vBias = vec(p + 'attn_v.bias', [Hkv * d]);
    }
    if (cfg.qkNorm) {
      L.qNorm = vec(p + 'attn_q_norm.weight', [d]);
      L.kNorm = vec(p + 'attn_k_norm.weight', [d]);
    }
    L.postNorm = vec(p + 'ffn_norm.weight', [h]);
  });
  w.finalNorm = vec('output_norm.weight', [h]);
  if (cfg.tieWordEmbeddings) w.lmHead = w.embed;
  return w;
}

/** Byte arrays of the given sizes in one large buffer (huge pages with the native kernels), each 64-byte aligned. */
function quantArena(sizes: number[]): Uint8Array[] {
  const at: number[] = [];
  let total = 0;
  for (const n of sizes) {
    at.push(total);
    total += Math.ceil(n / 64) * 64;
  }
  const buf = kernels().largeBuffer(Math.max(64, total));
  return sizes.map((n, i) => new Uint8Array(buf, at[i], n));
}

function readExactly(fd: number, g: GgufFile, t: GgufTensorInfo, into: Uint8Array): void {
  let done = 0;
  while (done < into.length) {
    const got = readSync(fd, into, done, into.length - done, g.dataOffset + t.offset + done);
    if (got <= 0) throw new KvevictError(`${g.file}: truncated while reading tensor ${printable(t.name)}`);
    done += got;
  }
}

/** unpermuteQK on a matrix's stored rows (block rows, bf16 rows): each row moves whole, in place. */
function unpermuteRowBytes(data: Uint8Array, rows: number, rowBytes: number, heads: number): void {
  const d = rows / heads,
    half = d / 2;
  const out = new Uint8Array(data.length);
  for (let hh = 0; hh < heads; hh++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < half; j++) {
        const hf = hh * d + i * half + j, // rotate_half layout
          gg = hh * d + 2 * j + i; // interleaved layout (the file's)
        out.set(data.subarray(gg * rowBytes, (gg + 1) * rowBytes), hf * rowBytes);
      }
  data.set(out);
}

/**
 * A Tokenizer rebuilt from GGUF tokenizer metadata: "gpt2" (byte-level BPE with the stored vocab and merges;
 * the pre-tokenizer follows tokenizer.ggml.pre, "smollm": digits split one by one, then GPT-2's regex) or
 * "llama" (SentencePiece BPE: scores, byte fallback, the leading-space rule; src/model/spm.ts). BOS is added
 * by encode(text, { addSpecialTokens: true }) as tokenizer.ggml.add_bos_token says, or by llama.cpp's default
 * when it is absent (SentencePiece: yes, gpt2: no).
 */
export function ggufTokenizer(g: GgufFile): Tokenizer {
  const model = ggufValue(g, 'tokenizer.ggml.model');
  if (model !== 'gpt2' && model !== 'llama')
    throw new KvevictError(`${g.file}: tokenizer.ggml.model ${JSON.stringify(model)} is not supported (supported: gpt2, llama)`);
  const tokens = ggufValue(g, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.some((t) => typeof t !== 'string'))
    throw new KvevictError(`${g.file}: tokenizer.ggml.tokens is missing or not a list of strings`);
  const toks = tokens as string[];
  const types = (ggufValue(g, 'tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  const name = (key: string): string | null => {
    const id = ggufValue(g, key);
    return typeof id === 'number' && id < toks.length ? toks[id] : null;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = ggufValue(g, key);
    return typeof v === 'boolean' ? v : fallback;
  };
  const tokenizerConfig: Record<string, unknown> = {
    bos_token: name('tokenizer.ggml.bos_token_id'),
    eos_token: name('tokenizer.ggml.eos_token_id'),
    unk_token: name('tokenizer.ggml.unknown_token_id'),
    pad_token: name('tokenizer.ggml.padding_token_id'),
    add_bos_token: flag('tokenizer.ggml.add_bos_token', model === 'llama'),
    add_eos_token: flag('tokenizer.ggml.add_eos_token', false),
    clean_up_tokenization_spaces: false,
  };
  const tmpl = ggufValue(g, 'tokenizer.chat_template');
  const chatTemplate = typeof tmpl === 'string' ? tmpl : null;
  if (types.length !== 0 && types.length !== toks.length)
    throw new KvevictError(`${g.file}: tokenizer.ggml.token_type has ${types.length} entries for ${toks.length} tokens`);
  if (model === 'llama') {
    const scores = ggufValue(g, 'tokenizer.ggml.scores');
    if (!Array.isArray(scores) || scores.length !== toks.length || scores.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new KvevictError(
        `${g.file}: a SentencePiece vocabulary needs tokenizer.ggml.scores, one finite number per token (${Array.isArray(scores) ? scores.length : 'none'} for ${toks.length} tokens)`,
      );
    }
    const unk = ggufValue(g, 'tokenizer.ggml.unknown_token_id');
    return spmTokenizer(
      {
        tokens: toks,
        scores: scores as number[],
        types: toks.map((_, i) => types[i] ?? GgufTokenType.NORMAL),
        addSpacePrefix: flag('tokenizer.ggml.add_space_prefix', true),
        unkId: typeof unk === 'number' && unk < toks.length ? unk : null,
        source: g.file,
      },
      tokenizerConfig,
      { chatTemplate },
    );
  }
  const merges = (ggufValue(g, 'tokenizer.ggml.merges') as string[] | undefined) ?? [];
  const known = new Set(toks);
  merges.forEach((m, i) => {
    const parts = typeof m === 'string' ? m.split(' ') : [];
    if (parts.length !== 2 || !known.has(parts[0]) || !known.has(parts[1]) || !known.has(parts[0] + parts[1])) {
      throw new KvevictError(`${g.file}: tokenizer.ggml.merges entry ${i} (${printable(String(m))}) does not fit the vocabulary`);
    }
  });
  const pre = ggufValue(g, 'tokenizer.ggml.pre');
  const vocab: Record<string, number> = {};
  const addedTokens: object[] = [];
  toks.forEach((t, id) => {
    if (types[id] === GgufTokenType.UNUSED) return;
    vocab[t] = id;
    if (types[id] === GgufTokenType.CONTROL || types[id] === GgufTokenType.USER_DEFINED) {
      addedTokens.push({
        id,
        content: t,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: types[id] === GgufTokenType.CONTROL,
      });
    }
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: merges.length > 0 };
  const preTokenizer =
    pre === 'smollm' ? { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] } : byteLevel;
  const tokenizerJson = {
    version: '1.0',
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModelJson(vocab, merges),
  };
  return new KvTokenizer(tokenizerJson, tokenizerConfig, { chatTemplate, source: g.file });
}

/** Load a GGUF model (F32/F16/BF16 tensors) as config, weights and tokenizer. */
export function loadGguf(file: string): { config: ModelConfig; weights: Weights; tokenizer: Tokenizer } {
  const g = readGguf(file);
  const config = ggufConfig(g);
  return { config, weights: ggufWeights(g, config), tokenizer: ggufTokenizer(g) };
}
