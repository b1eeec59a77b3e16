import { KvCache, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError, assert } from '../errors.js';
import { kernels, type Kernels } from '../kernels/index.js';
import { packUint16 } from '../kernels/arena.js';
import type { MatrixWeights, WeightMatrix } from '../kernels/types.js';
import { Bf16Matrix, QuantMatrix } from '../quant/formats.js';
import { ropeTables, type ModelConfig } from './config.js';
import { LayerProjections, LinearKernel, byLinearName, packLayers } from './linear.js';
import { ForwardProfile, profiledKernels } from './profile.js';
import type { ForwardArgs, Weights } from './types.js';
import { LINEAR_NAMES, floatMatrix, linearShape, type LinearName } from './weights.js';

export { ForwardProfile, type ForwardSection } from './profile.js';

/** forward() arguments, plus where to write the logits (a decode loop reuses one buffer: fresh memory is slow to touch). */
export interface ForwardOptions extends ForwardArgs {
  /** receives the logits when it has the right length ([vocab] for 'last', [rows, vocab] for 'all'); returned */
  logitsOut?: Float32Array;
}

/** Scratch buffers sized for `rows` rows; reused across calls and grown when a larger chunk comes. */
class Scratch {
  rows = 0;
  x: Float32Array = new Float32Array(0); // residual stream [rows, hidden]
  xb: Float32Array = new Float32Array(0); // normed input of a sublayer [rows, hidden]
  q: Float32Array = new Float32Array(0); // [rows, H, d]
  k: Float32Array = new Float32Array(0); // [rows, Hkv, d]
  v: Float32Array = new Float32Array(0); // [rows, Hkv, d]
  att: Float32Array = new Float32Array(0); // attention output [rows, H, d]
  gate: Float32Array = new Float32Array(0); // [rows, inter]
  up: Float32Array = new Float32Array(0); // [rows, inter]

  ensure(rows: number, cfg: ModelConfig): void {
    if (rows <= this.rows) return;
    const { hiddenSize: hidden, numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: inter } = cfg;
    this.rows = rows;
    this.x = new Float32Array(rows * hidden);
    this.xb = new Float32Array(rows * hidden);
    this.q = new Float32Array(rows * H * d);
    this.k = new Float32Array(rows * Hkv * d);
    this.v = new Float32Array(rows * Hkv * d);
    this.att = new Float32Array(rows * H * d);
    this.gate = new Float32Array(rows * inter);
    this.up = new Float32Array(rows * inter);
  }
}

/**
 * How the linear layers hold their weights: as loaded ('auto': float32, a bf16 file's bits, a GGUF file's
 * blocks), float32, IEEE halves (f16) or bfloat16, the last two halving the bytes a decode step reads.
 */
export type WeightFormat = 'auto' | 'f32' | 'f16' | 'bf16';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['auto', 'f32', 'f16', 'bf16'];

export interface LlamaModelOptions {
  /**
   * 'f16' keeps a half copy of every float linear layer's weights (lm head included) and computes from it: a
   * decode step, bound by memory bandwidth, streams half the bytes; a prefill reads them packed (packedPrefill)
   * or widens each matrix back to float32 in blocks before its sgemm. Outputs change by the weights' rounding to
   * f16 (relative 2^-11). 'bf16' does the same with bfloat16 (rounding relative 2^-8; a bf16 file's matrices
   * are kept as they are). 'f32' widens bf16 matrices to float32. Block-quantized matrices stay in their blocks
   * in every format. Default 'auto': the matrices as loaded.
   */
  weights?: WeightFormat;
  /**
   * Keep a second copy of every decoder layer's linear weights in the packed layout of Kernels.sgemmPacked
   * (float32, or halves with f16 weights) and run the prefill's projections from it (one decode row still reads
   * the row-major weights through sgemv): the weights never change, so packing them once beats OpenBLAS's
   * repacking on every call, for a second copy of the linear weights in memory (figures: docs/benchmarks.md).
   * Default: on with the native kernels built for AVX-512, off on AVX2 (OpenBLAS's kernels were faster there) and
   * with the TypeScript ones.
   */
  packedPrefill?: boolean;
}

/** The largest finite half; anything rounding past it is infinity. */
const HALF_MAX = 65504;

const DEFAULT_CHUNK = 512;
/** cache rows reserved past a prefill for decoding */
const DECODE_ROOM = 256;

/**
 * A Llama-family decoder (llama, mistral, qwen2, qwen3): one forward pass for chunked prefill and
 * single-token decode, over a KvCache whose heads may have been evicted to different lengths.
 */
export class LlamaModel {
  /** the kernels every step runs on (timed ones while a profile is attached) */
  k: Kernels;
  private readonly baseKernels: Kernels;
  private profileOf: ForwardProfile | null = null;
  private readonly scratch = new Scratch();
  private ropeCos: Float32Array = new Float32Array(0);
  private ropeSin: Float32Array = new Float32Array(0);
  private ropeLength = 0;
  /** the weights format of the linear layers */
  readonly weightFormat: WeightFormat;
  /** whether prefills compute their linear layers from packed weights (LlamaModelOptions.packedPrefill) */
  readonly packedPrefill: boolean;
  /** each layer's linear layers, with the choice of path behind them */
  private readonly projections: LayerProjections[];
  private readonly lmHead: MatrixWeights;
  private readonly plain = new LinearKernel();

  /** attach to measure where forward() spends its time (every kernel call is timed) */
  get profile(): ForwardProfile | null {
    return this.profileOf;
  }

  set profile(p: ForwardProfile | null) {
    this.profileOf = p;
    this.k = p ? profiledKernels(this.baseKernels, p) : this.baseKernels;
  }

  constructor(
    readonly config: ModelConfig,
    readonly weights: Weights,
    k?: Kernels,
    opts: LlamaModelOptions = {},
  ) {
    this.baseKernels = this.k = k ?? kernels();
    const c = config;
    assert(weights.layers.length === c.numLayers, 'weights have numLayers layers');
    assert(weights.embed.length === c.vocabSize * c.hiddenSize, 'embedding shape');
    assert(weights.lmHead.length === c.vocabSize * c.hiddenSize, 'lm head shape');
    const format = opts.weights ?? 'auto';
    if (!WEIGHT_FORMATS.includes(format))
      throw new KvevictError(`weights format must be one of ${WEIGHT_FORMATS.join(', ')}, got "${String(format)}"`);
    this.weightFormat = format;
    const loaded: MatrixWeights[] = [...weights.layers.flatMap((w) => LINEAR_NAMES.map((n) => w[n])), weights.lmHead];
    const kept: MatrixWeights[] =
      format === 'f16'
        ? halfWeights(weights, this.k)
        : format === 'bf16'
          ? loaded.map((m, i) => {
              const [rows, cols] =
                i === loaded.length - 1 ? [c.vocabSize, c.hiddenSize] : linearShape(c, LINEAR_NAMES[i % LINEAR_NAMES.length]);
              return m instanceof Float32Array || m instanceof Uint16Array ? bf16Copy(floatMatrix(m, this.k), rows, cols, this.k) : m;
            })
          : format === 'f32'
            ? loaded.map((m) => (m instanceof Bf16Matrix || m instanceof Uint16Array ? floatMatrix(m, this.k) : m))
            : loaded;
    // the packed prefill reads float32 or halves, all of one kind
    const halves = kept.every((m) => m instanceof Uint16Array);
    const packable = halves || kept.every((m) => m instanceof Float32Array);
    const linears = weights.layers.map((_, l) => byLinearName((i) => kept[l * LINEAR_NAMES.length + i]));
    this.lmHead = kept[kept.length - 1];
    // the packed micro-kernel beats OpenBLAS with AVX-512 (docs/benchmarks.md); on AVX2 OpenBLAS's tuned kernels win
    // (quantized matrices stay in their blocks: a prefill dequantizes blocks of rows for OpenBLAS instead)
    this.packedPrefill = packable && (opts.packedPrefill ?? (this.k.name === 'native' && this.k.simd === 'avx512'));
    const packed = this.packedPrefill ? packLayers(c, linears as Record<LinearName, WeightMatrix>[], this.k, halves) : null;
    this.projections = linears.map((w, l) => new LayerProjections(c, w, packed?.[l] ?? null, this.plain));
  }

  /** An empty cache shaped for this model: float32 unless `dtype` says 'f16' (the pipeline's default, DEFAULT_KV_DTYPE). */
  newCache(dtype: KvDtype = 'f32'): KvCache {
    return new KvCache(this.config.numLayers, this.config.numKvHeads, this.config.headDim, dtype);
  }

  /** Embedding rows of `tokens`: [rows, hidden]. */
  embed(tokens: Int32Array | readonly number[]): Float32Array {
    const hidden = this.config.hiddenSize;
    const out = new Float32Array(tokens.length * hidden);
    this.embedInto(out, tokens, 0, tokens.length);
    return out;
  }

  private embedInto(out: Float32Array, tokens: Int32Array | readonly number[], start: number, rows: number): void {
    const hidden = this.config.hiddenSize;
    const vocab = this.config.vocabSize;
    for (let r = 0; r < rows; r++) {
      const t = tokens[start + r];
      if (!Number.isInteger(t) || t < 0 || t >= vocab)
        throw new KvevictError(`token id ${t} is outside the vocabulary (vocab_size ${vocab})`);
      const e = this.weights.embed;
      if (e instanceof QuantMatrix) this.k.dequantRows(e, t, 1, out.subarray(r * hidden, (r + 1) * hidden));
      else if (e instanceof Bf16Matrix) this.k.bf16ToFloat(e.bits.subarray(t * hidden, (t + 1) * hidden), out.subarray(r * hidden), hidden);
      else if (e instanceof Uint16Array) this.k.halfToFloat(e.subarray(t * hidden, (t + 1) * hidden), out.subarray(r * hidden), hidden);
      else out.set(e.subarray(t * hidden, (t + 1) * hidden), r * hidden);
    }
  }

  private checkCache(cache: KvCache): void {
    const cfg = this.config;
    assert(
      cache.numLayers === cfg.numLayers && cache.numKvHeads === cfg.numKvHeads && cache.headDim === cfg.headDim,
      'cache shape matches the model',
    );
  }

  /** The largest of `positions`; one past max_position_embeddings is refused. */
  private maxPosition(positions: Int32Array): number {
    let maxPos = -1;
    for (const p of positions) {
      if (p < 0 || p >= this.config.maxPositions)
        throw new KvevictError(`position ${p} is beyond max_position_embeddings ${this.config.maxPositions} of the model`);
      if (p > maxPos) maxPos = p;
    }
    return maxPos;
  }

  /** The query heads of KV head h over its cache `hc`: `rows` query rows from q (row stride H*d) into out. */
  private attend(
    h: number,
    hc: KvCache['layers'][number][number],
    q: Float32Array,
    out: Float32Array,
    rows: number,
    qPos: Int32Array,
  ): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    const group = H / Hkv;
    this.k.attendHead({
      q,
      qRowStride: H * d,
      out,
      rows,
      headDim: d,
      firstHead: h * group,
      group,
      qPos,
      keys: hc.keyData,
      values: hc.valueData,
      kPos: hc.positions,
      n: hc.length,
      scale: 1 / Math.sqrt(d),
    });
  }

  /** RoPE tables cover positions [0, ropeLength); grown geometrically, never past max_position_embeddings. */
  private ensureRope(maxPos: number): void {
    if (maxPos < this.ropeLength) return;
    const len = Math.min(this.config.maxPositions, Math.max(maxPos + 1, 2 * this.ropeLength, 1024));
    const t = ropeTables(this.config, len);
    this.ropeCos = t.cos;
    this.ropeSin = t.sin;
    this.ropeLength = len;
  }

  /**
   * Run `tokens` (or input `embeddings`) at `positions` through the model, appending their keys and values
   * to `cache`. Returns the logits of the last row [vocab], of every row [rows, vocab], or nothing.
   */
  forward(args: ForwardOptions): Float32Array {
    const cfg = this.config;
    const { positions, cache } = args;
    const hidden = cfg.hiddenSize;
    if ((args.tokens === undefined) === (args.embeddings === undefined))
      throw new KvevictError('forward: give exactly one of tokens or embeddings');
    if (args.embeddings !== undefined && args.embeddings.length % hidden !== 0) {
      throw new KvevictError(`forward: embeddings length ${args.embeddings.length} is not a multiple of hidden_size ${hidden}`);
    }
    const rows = args.tokens !== undefined ? args.tokens.length : args.embeddings!.length / hidden;
    if (positions.length !== rows) throw new KvevictError(`forward: ${positions.length} positions for ${rows} rows`);
    this.checkCache(cache);
    const maxPos = this.maxPosition(positions);
    const mode = args.logits ?? 'last';
    const vocab = cfg.vocabSize;
    const outLength = mode === 'all' ? rows * vocab : mode === 'last' && rows > 0 ? vocab : 0;
    if (args.logitsOut !== undefined && args.logitsOut.length !== outLength) {
      throw new KvevictError(`forward: logitsOut has ${args.logitsOut.length} floats, the logits need ${outLength}`);
    }
    const out = args.logitsOut ?? new Float32Array(outLength);
    if (rows === 0) return out;
    const chunk = Math.max(1, Math.floor(args.chunk ?? DEFAULT_CHUNK));
    this.ensureRope(maxPos);
    // a prefill leaves room for the tokens decoded after it: growing a long cache at the first decode step would
    // copy it whole into fresh memory (slow to touch)
    const room = rows > 1 ? rows + DECODE_ROOM : rows;
    for (const layer of cache.layers) for (const head of layer) if (head.length + rows > head.capacity) head.reserve(room);
    const s = this.scratch;
    s.ensure(Math.min(rows, chunk), cfg);
    const prof = this.profile;
    if (prof) prof.rows += rows;

    for (let start = 0; start < rows; start += chunk) {
      const n = Math.min(chunk, rows - start);
      const pos = positions.subarray(start, start + n);
      const t0 = prof ? performance.now() : 0;
      if (args.tokens !== undefined) this.embedInto(s.x, args.tokens, start, n);
      else s.x.set(args.embeddings!.subarray(start * hidden, (start + n) * hidden));
      if (prof) prof.ms.embed += performance.now() - t0;
      // The last layer's output matters only where logits are read: every row for 'all', the prompt's last row
      // for 'last', none otherwise. Its other rows need only their keys and values in the cache (an observer,
      // which sees every row's queries, keeps the whole layer).
      const lastNeeds = args.observer || mode === 'all' ? 'all' : mode === 'last' && start + n === rows ? 'last' : 'none';
      for (let l = 0; l < cfg.numLayers; l++) this.layer(l, n, pos, cache, args.observer, l === cfg.numLayers - 1 ? lastNeeds : 'all');

      if (mode === 'all') {
        this.k.rmsnorm(s.xb, s.x, this.weights.finalNorm, n, hidden, cfg.rmsNormEps);
        this.plain.run(this.k, n, vocab, hidden, s.xb, this.lmHead, out.subarray(start * vocab, (start + n) * vocab), false);
      } else if (mode === 'last' && start + n === rows) {
        const last = s.x.subarray((n - 1) * hidden, n * hidden);
        this.k.rmsnorm(s.xb, last, this.weights.finalNorm, 1, hidden, cfg.rmsNormEps);
        this.k.sgemv(vocab, hidden, this.lmHead, s.xb, out);
      }
    }
    return out;
  }

  /** One decoder layer over the `n` rows in scratch.x, in place; `outputs`: the rows whose output is needed. */
  private layer(
    l: number,
    n: number,
    pos: Int32Array,
    cache: KvCache | KvCache[],
    observer: ForwardArgs['observer'],
    outputs: 'all' | 'last' | 'none',
  ): void {
    const { k, scratch: s } = this;
    const w = this.weights.layers[l];
    const proj = this.projections[l];
    const { hiddenSize: hidden, numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: inter, rmsNormEps: eps } = this.config;
    // the output rows are the last `out` of the residual stream
    const out = outputs === 'all' ? n : outputs === 'last' ? 1 : 0;
    const x = out === n ? s.x : s.x.subarray((n - out) * hidden);
    const outPos = out === n ? pos : pos.subarray(n - out);
    const qRows = n === 1 ? 1 : out;

    // attention: norm, projections (q for the output rows only), biases and q/k norms (qwen), RoPE
    k.rmsnorm(s.xb, s.x, w.inputNorm, n, hidden, eps);
    proj.qkv(k, n, out, s.xb, s);
    biasesAndNorms(k, w, s, n, qRows, this.config);
    k.rope(s.q, qRows, H, d, n === 1 ? pos : outPos, this.ropeCos, this.ropeSin);
    k.rope(s.k, n, Hkv, d, pos, this.ropeCos, this.ropeSin);

    if (Array.isArray(cache)) this.attendEach(l, n, pos, cache);
    else if (!this.attendCache(l, n, out, pos, outPos, cache, observer)) return;
    proj.o(k, out, s.att, x);

    // SwiGLU MLP into the residual stream
    k.rmsnorm(s.xb, x, w.postNorm, out, hidden, eps);
    proj.gateUp(k, out, s.xb, s);
    k.siluMul(s.gate, s.gate, s.up, out * inter);
    proj.down(k, out, s.gate, x);
  }

  /** Rows of one sequence join its cache; the output rows attend over it. False when no row's output is needed. */
  private attendCache(
    l: number,
    n: number,
    out: number,
    pos: Int32Array,
    outPos: Int32Array,
    cache: KvCache,
    observer: ForwardArgs['observer'],
  ): boolean {
    const { k, scratch: s } = this;
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    // the new rows join the cache, then the observer sees them (an observer always comes with every row's output)
    const heads = cache.layers[l];
    for (let h = 0; h < Hkv; h++) heads[h].append(n, s.k, s.v, Hkv * d, h * d, pos, k);
    observer?.({
      layer: l,
      positions: pos,
      queries: s.q.subarray(0, n * H * d),
      keys: s.k.subarray(0, n * Hkv * d),
      values: s.v.subarray(0, n * Hkv * d),
    });
    if (out === 0) return false;

    // each KV head's group of query heads attends over that head's compact cache; positions decide causality
    for (let h = 0; h < Hkv; h++) this.attend(h, heads[h], s.q, s.att, out, outPos);
    return true;
  }

  /** Row r is the next token of sequence r: it joins caches[r] and attends over that cache alone. */
  private attendEach(l: number, n: number, pos: Int32Array, caches: KvCache[]): void {
    const { k, scratch: s } = this;
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    for (let r = 0; r < n; r++) {
      const heads = caches[r].layers[l];
      const p = pos.subarray(r, r + 1);
      for (let h = 0; h < Hkv; h++) {
        heads[h].append(1, s.k.subarray(r * Hkv * d), s.v.subarray(r * Hkv * d), Hkv * d, h * d, p, k);
        this.attend(h, heads[h], s.q.subarray(r * H * d), s.att.subarray(r * H * d), 1, p);
      }
    }
  }

  /**
   * One decode step of several sequences at once: token r at positions[r] joins caches[r] (each sequence's
   * own cache), and the linear layers run as one matrix product over the rows, so the weights are read once
   * for all of them. Returns the logits [rows, vocab] (into logitsOut when given).
   */
  forwardBatch(tokens: Int32Array, positions: Int32Array, caches: KvCache[], logitsOut?: Float32Array): Float32Array {
    const cfg = this.config;
    const n = tokens.length;
    if (positions.length !== n || caches.length !== n)
      throw new KvevictError(`forwardBatch: ${n} tokens, ${positions.length} positions and ${caches.length} caches`);
    if (new Set(caches).size !== n) throw new KvevictError('forwardBatch: each row needs its own cache');
    const vocab = cfg.vocabSize,
      hidden = cfg.hiddenSize;
    const out = logitsOut ?? new Float32Array(n * vocab);
    if (out.length !== n * vocab) throw new KvevictError(`forwardBatch: logitsOut has ${out.length} floats, the logits need ${n * vocab}`);
    if (n === 0) return out;
    if (n === 1) {
      this.forward({ tokens, positions, cache: caches[0], logitsOut: out });
      return out;
    }
    for (const c of caches) this.checkCache(c);
    this.ensureRope(this.maxPosition(positions));
    const s = this.scratch;
    s.ensure(n, cfg);
    this.embedInto(s.x, tokens, 0, n);
    this.plain.decodeRows = true;
    try {
      for (let l = 0; l < cfg.numLayers; l++) this.layer(l, n, positions, caches, undefined, 'all');
      this.k.rmsnorm(s.xb, s.x, this.weights.finalNorm, n, hidden, cfg.rmsNormEps);
      this.plain.run(this.k, n, vocab, hidden, s.xb, this.lmHead, out, false);
    } finally {
      this.plain.decodeRows = false;
    }
    return out;
  }
}

/** Qwen's q/k/v biases and qwen3's q/k norms, where the weights have them. */
function biasesAndNorms(k: Kernels, w: Weights['layers'][number], s: Scratch, n: number, qRows: number, cfg: ModelConfig): void {
  const { numHeads: H, numKvHeads: Hkv, headDim: d, rmsNormEps: eps } = cfg;
  if (w.qBias) addBias(s.q, w.qBias, qRows, H * d);
  if (w.kBias) addBias(s.k, w.kBias, n, Hkv * d);
  if (w.vBias) addBias(s.v, w.vBias, n, Hkv * d);
  if (w.qNorm) k.rmsnorm(s.q, s.q, w.qNorm, qRows * H, d, eps);
  if (w.kNorm) k.rmsnorm(s.k, s.k, w.kNorm, n * Hkv, d, eps);
}

/**
 * Half copies of every float32 linear layer's weights, the lm head last (quantized ones stay as they are); a
 * weight past the half range is refused (it would become infinity).
 */
function halfWeights(weights: Weights, k: Kernels): MatrixWeights[] {
  const all = [...weights.layers.flatMap((w) => LINEAR_NAMES.map((n) => w[n])), weights.lmHead].map((m) =>
    m instanceof Bf16Matrix ? floatMatrix(m, k) : m,
  );
  const f32 = all.filter((m): m is Float32Array => m instanceof Float32Array);
  const names = LINEAR_NAMES;
  const matrixName = (i: number) =>
    i === all.length - 1 ? 'the lm head' : `layer ${Math.floor(i / names.length)} ${names[i % names.length]}`;
  all.forEach((w, m) => {
    if (!(w instanceof Float32Array)) return;
    for (let i = 0; i < w.length; i++) {
      if (Math.abs(w[i]) > HALF_MAX)
        throw new KvevictError(
          `weights f16: ${matrixName(m)} holds ${w[i]} at index ${i}, beyond the f16 range (+-${HALF_MAX}); use f32 weights`,
        );
    }
  });
  const halves = packUint16(
    f32.map((w) => w.length),
    k,
  );
  f32.forEach((w, m) => k.floatToHalf(w, halves[m], w.length));
  let next = 0;
  return all.map((m) => (m instanceof Float32Array ? halves[next++] : m));
}

/** A bfloat16 copy of a float32 matrix, rounded to the nearest (ties to even; NaN stays NaN). */
function bf16Copy(w: Float32Array, rows: number, cols: number, k: Kernels): Bf16Matrix {
  const bits = packUint16([w.length], k)[0];
  const u = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < w.length; i++) {
    const x = u[i];
    bits[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return new Bf16Matrix(bits, rows, cols);
}

function addBias(x: Float32Array, bias: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * dim;
    for (let i = 0; i < dim; i++) x[off + i] += bias[i];
  }
}
