import { KvCache } from '../cache/kv-cache.js';
import { KvevictError, assert } from '../errors.js';
import { kernels, packedWeightFloats, type Kernels } from '../kernels/index.js';
import { ropeTables, type ModelConfig } from './config.js';
import type { GemvPart, WeightMatrix } from '../kernels/types.js';
import { ARENA_MAX_BYTES, packFloat32, packUint16 } from '../kernels/arena.js';
import type { ForwardArgs, LayerWeights, Weights } from './types.js';
import { LINEAR_NAMES, linearShape, type LinearName } from './weights.js';

/** forward() arguments, plus where to write the logits (a decode loop reuses one buffer: fresh memory is slow to touch). */
export interface ForwardOptions extends ForwardArgs {
  /** receives the logits when it has the right length ([vocab] for 'last', [rows, vocab] for 'all'); returned */
  logitsOut?: Float32Array;
}

/** The parts of a forward pass a profile times. */
export type ForwardSection = 'linear' | 'attention' | 'norm' | 'rope' | 'cache' | 'activation' | 'embed';

/** Where a forward pass spends its time, when a profile is attached (bench only). */
export class ForwardProfile {
  readonly ms: Record<ForwardSection, number> = { linear: 0, attention: 0, norm: 0, rope: 0, cache: 0, activation: 0, embed: 0 };
  /** rows processed (prompt and decode rows alike) */
  rows = 0;

  get linearMs(): number {
    return this.ms.linear;
  }

  get attentionMs(): number {
    return this.ms.attention;
  }

  /** everything but the linear layers and attention */
  get otherMs(): number {
    return this.ms.norm + this.ms.rope + this.ms.cache + this.ms.activation + this.ms.embed;
  }

  reset(): void {
    for (const key of Object.keys(this.ms) as ForwardSection[]) this.ms[key] = 0;
    this.rows = 0;
  }
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
  /** per layer, the decode row's fused projections (q, k, v; gate, up) into these buffers */
  qkvParts: GemvPart[][] = [];
  gateUpParts: GemvPart[][] = [];

  ensure(rows: number, cfg: ModelConfig): void {
    if (rows <= this.rows) return;
    this.qkvParts = [];
    this.gateUpParts = [];
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

/** How the linear layers hold their weights: float32, or IEEE halves (f16), which halve the bytes a decode step reads. */
export type WeightFormat = 'f32' | 'f16';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'f16'];

export interface LlamaModelOptions {
  /**
   * 'f16' keeps a half copy of every linear layer's weights (lm head included) and computes from it: a decode
   * step, bound by memory bandwidth, streams half the bytes; a prefill reads them packed (packedPrefill) or
   * widens each matrix back to float32 in blocks before its sgemm. Outputs change by the weights' rounding to
   * f16 (relative 2^-11). Default 'f32'.
   */
  weights?: WeightFormat;
  /**
   * Keep a second copy of every decoder layer's linear weights in the packed layout of Kernels.sgemmPacked
   * (float32, or halves with f16 weights) and run the prefill's projections from it (one decode row still reads
   * the row-major weights through sgemv). Measured 4-7% faster 2K prefills than OpenBLAS's sgemm, for 0.42 GB
   * more memory with SmolLM2-135M (0.21 GB with f16 weights). Default: on with the native kernels, off with the
   * TypeScript ones.
   */
  packedPrefill?: boolean;
}

/** The matrices the linear layers compute from, float32 or f16. */
type LinearMatrices = Record<LinearName, WeightMatrix>;

/** The largest finite half; anything rounding past it is infinity. */
const HALF_MAX = 65504;

/** Most float32 elements a prefill widens from f16 at once (4 MB: the block stays in cache for its sgemm). */
const WIDEN_FLOATS = 1 << 20;

const DEFAULT_CHUNK = 512;
/** cache rows reserved past a prefill for decoding */
const DECODE_ROOM = 256;

/**
 * A Llama-family decoder (llama, mistral, qwen2, qwen3): one forward pass for chunked prefill and
 * single-token decode, over a KvCache whose heads may have been evicted to different lengths.
 */
export class LlamaModel {
  readonly k: Kernels;
  /** attach to measure where forward() spends its time */
  profile: ForwardProfile | null = null;
  private readonly scratch = new Scratch();
  private ropeCos: Float32Array = new Float32Array(0);
  private ropeSin: Float32Array = new Float32Array(0);
  private ropeLength = 0;
  /** the weights format of the linear layers */
  readonly weightFormat: WeightFormat;
  private readonly linears: LinearMatrices[];
  /** whether prefills compute their linear layers from packed weights (LlamaModelOptions.packedPrefill) */
  get packedPrefill(): boolean {
    return this.packedLinears !== null;
  }
  /** each layer's linear weights packed for the prefill (packedPrefill), or null */
  private readonly packedLinears: PackedLayer[] | null = null;
  private readonly lmHead: WeightMatrix;
  private widened: Float32Array = new Float32Array(0);

  constructor(readonly config: ModelConfig, readonly weights: Weights, k?: Kernels, opts: LlamaModelOptions = {}) {
    this.k = k ?? kernels();
    const c = config;
    assert(weights.layers.length === c.numLayers, 'weights have numLayers layers');
    assert(weights.embed.length === c.vocabSize * c.hiddenSize, 'embedding shape');
    assert(weights.lmHead.length === c.vocabSize * c.hiddenSize, 'lm head shape');
    const format = opts.weights ?? 'f32';
    if (!WEIGHT_FORMATS.includes(format)) throw new KvevictError(`weights format must be ${WEIGHT_FORMATS.join(' or ')}, got "${String(format)}"`);
    this.weightFormat = format;
    const names = LINEAR_NAMES;
    const f32 = [...weights.layers.flatMap((w) => names.map((n) => w[n])), weights.lmHead];
    let kept: WeightMatrix[] = f32;
    if (format === 'f16') {
      const matrixName = (i: number) => (i === f32.length - 1 ? 'the lm head' : `layer ${Math.floor(i / names.length)} ${names[i % names.length]}`);
      // a weight past the half range would become infinity and every output NaN: refuse instead
      f32.forEach((w, m) => {
        for (let i = 0; i < w.length; i++) {
          if (Math.abs(w[i]) > HALF_MAX) throw new KvevictError(`weights f16: ${matrixName(m)} holds ${w[i]} at index ${i}, beyond the f16 range (+-${HALF_MAX}); use f32 weights`);
        }
      });
      const halves = packUint16(f32.map((w) => w.length), this.k);
      f32.forEach((w, m) => this.k.floatToHalf(w, halves[m], w.length));
      kept = halves;
    }
    this.linears = weights.layers.map((_, l) => byLinearName((i) => kept[l * names.length + i]));
    this.lmHead = kept[kept.length - 1];
    if (opts.packedPrefill ?? this.k.name === 'native') {
      // ordinary pages: the packed product reuses each panel from cache, so huge pages gain it nothing, and
      // faulting them in (compacted on demand) took twice as long
      // q, k and v back to back, and gate and up: each group is one fused product (sgemmPackedParts)
      const floats = (n: LinearName) => packedWeightFloats(...linearShape(c, n));
      const counts = weights.layers.flatMap(() => PACKED_GROUPS.map((group) => group.reduce((sum, n) => sum + floats(n), 0)));
      const limits = { minBytes: Infinity, maxBytes: ARENA_MAX_BYTES };
      const packed: WeightMatrix[] = format === 'f16' ? packUint16(counts, this.k, limits) : packFloat32(counts, this.k, limits);
      this.packedLinears = this.linears.map((w, l) => {
        const [qkv, o, gateUp, down] = PACKED_GROUPS.map((group, g) => {
          const buf = packed[l * PACKED_GROUPS.length + g];
          let offset = 0;
          for (const n of group) {
            this.k.packWeights(w[n], ...linearShape(c, n), buf.subarray(offset));
            offset += floats(n);
          }
          return buf;
        });
        return { qkv, kv: qkv.subarray(floats('q')), o, gateUp, down };
      });
    }
  }

  /** An empty cache shaped for this model. */
  newCache(): KvCache {
    return new KvCache(this.config.numLayers, this.config.numKvHeads, this.config.headDim);
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
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new KvevictError(`token id ${t} is outside the vocabulary (vocab_size ${vocab})`);
      out.set(this.weights.embed.subarray(t * hidden, (t + 1) * hidden), r * hidden);
    }
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
    if ((args.tokens === undefined) === (args.embeddings === undefined)) throw new KvevictError('forward: give exactly one of tokens or embeddings');
    if (args.embeddings !== undefined && args.embeddings.length % hidden !== 0) {
      throw new KvevictError(`forward: embeddings length ${args.embeddings.length} is not a multiple of hidden_size ${hidden}`);
    }
    const rows = args.tokens !== undefined ? args.tokens.length : args.embeddings!.length / hidden;
    if (positions.length !== rows) throw new KvevictError(`forward: ${positions.length} positions for ${rows} rows`);
    assert(cache.numLayers === cfg.numLayers && cache.numKvHeads === cfg.numKvHeads && cache.headDim === cfg.headDim, 'cache shape matches the model');
    let maxPos = -1;
    for (let r = 0; r < rows; r++) {
      const p = positions[r];
      if (p < 0 || p >= cfg.maxPositions) {
        throw new KvevictError(`position ${p} is beyond max_position_embeddings ${cfg.maxPositions} of the model`);
      }
      if (p > maxPos) maxPos = p;
    }
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
      let t0 = prof ? performance.now() : 0;
      if (args.tokens !== undefined) this.embedInto(s.x, args.tokens, start, n);
      else s.x.set(args.embeddings!.subarray(start * hidden, (start + n) * hidden));
      if (prof) prof.ms.embed += performance.now() - t0;
      // The last layer's output matters only where logits are read: every row for 'all', the prompt's last row
      // for 'last', none otherwise. Its other rows need only their keys and values in the cache (an observer,
      // which sees every row's queries, keeps the whole layer).
      const lastNeeds = args.observer || mode === 'all' ? 'all' : mode === 'last' && start + n === rows ? 'last' : 'none';
      for (let l = 0; l < cfg.numLayers; l++) this.layer(l, n, pos, cache, args.observer, l === cfg.numLayers - 1 ? lastNeeds : 'all');

      t0 = prof ? performance.now() : 0;
      if (mode === 'all') {
        this.k.rmsnorm(s.xb, s.x, this.weights.finalNorm, n, hidden, cfg.rmsNormEps);
        this.linear(n, vocab, hidden, s.xb, this.lmHead, out.subarray(start * vocab, (start + n) * vocab), false);
      } else if (mode === 'last' && start + n === rows) {
        const last = s.x.subarray((n - 1) * hidden, n * hidden);
        this.k.rmsnorm(s.xb, last, this.weights.finalNorm, 1, hidden, cfg.rmsNormEps);
        this.k.sgemv(vocab, hidden, this.lmHead, s.xb, out);
      }
      if (prof) prof.ms.linear += performance.now() - t0;
    }
    return out;
  }

  /**
   * y[n, outDim] = x[n, inDim] . W[outDim, inDim]^T (+ y when accumulate): from the packed copy when there is one,
   * sgemv for one row (OpenBLAS sgemm with M=1 is slow), OpenBLAS sgemm otherwise.
   */
  private linear(n: number, outDim: number, inDim: number, x: Float32Array, w: WeightMatrix, y: Float32Array, accumulate: boolean, packed?: WeightMatrix): void {
    if (packed && n > 1) this.k.sgemmPacked(n, outDim, inDim, x, inDim, packed, y, outDim, accumulate);
    else if (n === 1) this.k.sgemv(outDim, inDim, w, x, y, accumulate);
    else if (w instanceof Float32Array) this.k.sgemm(false, true, n, outDim, inDim, 1, x, inDim, w, inDim, accumulate ? 1 : 0, y, outDim);
    else {
      // f16: widen blocks of output rows to float32, each block's sgemm writing its columns of y
      const rowsPerBlock = Math.max(1, Math.min(outDim, Math.floor(WIDEN_FLOATS / inDim)));
      if (this.widened.length < rowsPerBlock * inDim) this.widened = new Float32Array(rowsPerBlock * inDim);
      for (let r0 = 0; r0 < outDim; r0 += rowsPerBlock) {
        const rows = Math.min(rowsPerBlock, outDim - r0);
        this.k.halfToFloat(w.subarray(r0 * inDim, (r0 + rows) * inDim), this.widened, rows * inDim);
        this.k.sgemm(false, true, n, rows, inDim, 1, x, inDim, this.widened, inDim, accumulate ? 1 : 0, y.subarray(r0), outDim);
      }
    }
  }

  /** One decoder layer over the `n` rows in scratch.x, in place. */
  private layer(l: number, n: number, pos: Int32Array, cache: KvCache, observer: ForwardArgs['observer'], outputs: 'all' | 'last' | 'none'): void {
    const cfg = this.config;
    const w: LayerWeights = this.weights.layers[l];
    const pk = this.packedLinears?.[l]; // the same, packed for the prefill's rows
    const lin = this.linears[l]; // the matrices the linear layers compute from (float32 or f16)
    const k = this.k;
    const s = this.scratch;
    const { hiddenSize: hidden, numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: inter, rmsNormEps: eps } = cfg;
    const qDim = H * d;
    const kvDim = Hkv * d;
    const prof = this.profile;
    let t = prof ? performance.now() : 0;
    const lap = (section: ForwardSection): void => {
      if (!prof) return;
      const now = performance.now();
      prof.ms[section] += now - t;
      t = now;
    };

    // rows whose output is needed: all n, or only the last (`out` rows at the end of the residual stream)
    const out = outputs === 'all' ? n : outputs === 'last' ? 1 : 0;
    const x = out === n ? s.x : s.x.subarray((n - out) * hidden);
    const outPos = out === n ? pos : pos.subarray(n - out);

    // attention: norm, projections, (biases, q/k norms), RoPE
    k.rmsnorm(s.xb, s.x, w.inputNorm, n, hidden, eps);
    lap('norm');
    if (n === 1) {
      // one pass of the thread pool for the three projections of the decode row
      k.sgemvParts(hidden, s.xb, (s.qkvParts[l] ??= [{ w: lin.q, n: qDim, y: s.q }, { w: lin.k, n: kvDim, y: s.k }, { w: lin.v, n: kvDim, y: s.v }]));
    } else if (pk && out === n) {
      k.sgemmPackedParts(n, hidden, s.xb, hidden, pk.qkv, [{ n: qDim, y: s.q }, { n: kvDim, y: s.k }, { n: kvDim, y: s.v }], false);
    } else {
      if (out > 0) this.linear(out, qDim, hidden, out === n ? s.xb : s.xb.subarray((n - out) * hidden), lin.q, s.q, false);
      if (pk) k.sgemmPackedParts(n, hidden, s.xb, hidden, pk.kv, [{ n: kvDim, y: s.k }, { n: kvDim, y: s.v }], false);
      else {
        this.linear(n, kvDim, hidden, s.xb, lin.k, s.k, false);
        this.linear(n, kvDim, hidden, s.xb, lin.v, s.v, false);
      }
    }
    lap('linear');
    const qRows = n === 1 ? 1 : out;
    if (w.qBias) addBias(s.q, w.qBias, qRows, qDim);
    if (w.kBias) addBias(s.k, w.kBias, n, kvDim);
    if (w.vBias) addBias(s.v, w.vBias, n, kvDim);
    if (w.qNorm) k.rmsnorm(s.q, s.q, w.qNorm, qRows * H, d, eps);
    if (w.kNorm) k.rmsnorm(s.k, s.k, w.kNorm, n * Hkv, d, eps);
    k.rope(s.q, qRows, H, d, n === 1 ? pos : outPos, this.ropeCos, this.ropeSin);
    k.rope(s.k, n, Hkv, d, pos, this.ropeCos, this.ropeSin);
    lap('rope');

    // the new rows join the cache, then the observer sees them (an observer always comes with every row's output)
    const heads = cache.layers[l];
    for (let h = 0; h < Hkv; h++) heads[h].append(n, s.k, s.v, kvDim, h * d, pos, k);
    if (observer) {
      observer({ layer: l, positions: pos, queries: s.q.subarray(0, n * qDim), keys: s.k.subarray(0, n * kvDim), values: s.v.subarray(0, n * kvDim) });
    }
    lap('cache');
    if (out === 0) return;

    // each KV head's group of query heads attends over that head's compact cache; positions decide causality
    const group = H / Hkv;
    const scale = 1 / Math.sqrt(d);
    for (let h = 0; h < Hkv; h++) {
      const hc = heads[h];
      k.attendHead({
        q: s.q, qRowStride: qDim, out: s.att, rows: out, headDim: d, firstHead: h * group, group,
        qPos: outPos, keys: hc.keys, values: hc.values, kPos: hc.positions, n: hc.length, scale,
      });
    }
    lap('attention');

    // output projection into the residual stream
    this.linear(out, hidden, qDim, s.att, lin.o, x, true, pk?.o);
    lap('linear');

    // SwiGLU MLP
    k.rmsnorm(s.xb, x, w.postNorm, out, hidden, eps);
    lap('norm');
    if (out === 1) {
      k.sgemvParts(hidden, s.xb, (s.gateUpParts[l] ??= [{ w: lin.gate, n: inter, y: s.gate }, { w: lin.up, n: inter, y: s.up }]));
    } else if (pk) {
      k.sgemmPackedParts(out, hidden, s.xb, hidden, pk.gateUp, [{ n: inter, y: s.gate }, { n: inter, y: s.up }], false);
    } else {
      this.linear(out, inter, hidden, s.xb, lin.gate, s.gate, false);
      this.linear(out, inter, hidden, s.xb, lin.up, s.up, false);
    }
    lap('linear');
    k.siluMul(s.gate, s.gate, s.up, out * inter);
    lap('activation');
    this.linear(out, hidden, inter, s.gate, lin.down, x, true, pk?.down);
    lap('linear');
  }
}

/** The groups of a layer's linear weights packed back to back for the prefill: each group is one fused product. */
const PACKED_GROUPS: readonly (readonly LinearName[])[] = [['q', 'k', 'v'], ['o'], ['gate', 'up'], ['down']];

/**
 * A layer's linear weights packed for the prefill (Kernels.packWeights; float32, or halves with f16 weights):
 * q|k|v, k|v (its tail), o, gate|up, down.
 */
interface PackedLayer {
  qkv: WeightMatrix;
  kv: WeightMatrix;
  o: WeightMatrix;
  gateUp: WeightMatrix;
  down: WeightMatrix;
}

/** A record of the linear layers' matrices, the i-th of LINEAR_NAMES from at(i). */
function byLinearName<T>(at: (i: number) => T): Record<LinearName, T> {
  return Object.fromEntries(LINEAR_NAMES.map((n, i) => [n, at(i)])) as Record<LinearName, T>;
}

function addBias(x: Float32Array, bias: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * dim;
    for (let i = 0; i < dim; i++) x[off + i] += bias[i];
  }
}
