import { KvevictError, assert } from '../errors.js';
import { kernels } from '../kernels/index.js';
import { jsKernels } from '../kernels/js.js';
import type { CacheRows, Kernels } from '../kernels/types.js';

/** Live bytes of a whole cache and the most it has held: the heads report every change to it. */
export class CacheMeter {
  live = 0;
  peak = 0;

  change(delta: number): void {
    this.live += delta;
    if (this.live > this.peak) this.peak = this.live;
  }
}

/** How a cache stores keys and values: float32, or IEEE halves (half the bytes; llama.cpp's default). */
export type KvDtype = 'f32' | 'f16';
export const KV_DTYPES: readonly KvDtype[] = ['f32', 'f16'];
/** The cache the pipeline and the CLI build unless told otherwise (the engine's own KvCache defaults to f32). */
export const DEFAULT_KV_DTYPE: KvDtype = 'f16';

/** Check a user's `--kv-dtype` / `kvDtype`. */
export function checkKvDtype(value: unknown, name = 'kvDtype'): KvDtype {
  if (value === 'f32' || value === 'f16') return value;
  throw new KvevictError(`${name} must be ${KV_DTYPES.join(' or ')}, got "${String(value)}"`);
}

/** Bytes of one token's entries in every layer and KV head of a full cache (keys, values and positions). */
export function tokenCacheBytes(cfg: { numLayers: number; numKvHeads: number; headDim: number }, dtype: KvDtype): number {
  return cfg.numLayers * cfg.numKvHeads * (2 * cfg.headDim * (dtype === 'f16' ? 2 : 4) + 4);
}

function rowStore(dtype: KvDtype, n: number): CacheRows {
  return dtype === 'f16' ? new Uint16Array(n) : new Float32Array(n);
}

/**
 * One KV head of one layer: compact keys, values and positions, sorted by ascending position.
 * Keys are stored after RoPE, so an entry keeps its original position forever. With dtype 'f16' keys and values
 * are rounded to the nearest half as they join; every reader sees those rounded values (keyRows / valueRows
 * widen them; attention reads the halves directly).
 */
export class HeadCache {
  /** the stored keys [capacity, headDim]: float32, or half bits (f16); read them through keyRows() */
  keyData: CacheRows;
  /** the stored values, as keyData */
  valueData: CacheRows;
  positions: Int32Array;
  private _length = 0;
  /** the cache this head belongs to counts its bytes here */
  meter: CacheMeter | null = null;

  constructor(
    readonly headDim: number,
    capacity = 0,
    readonly dtype: KvDtype = 'f32',
  ) {
    this.keyData = rowStore(dtype, capacity * headDim);
    this.valueData = rowStore(dtype, capacity * headDim);
    this.positions = new Int32Array(capacity);
  }

  get capacity(): number {
    return this.positions.length;
  }

  /** live entries; every change is reported to the meter */
  get length(): number {
    return this._length;
  }

  set length(n: number) {
    this.meter?.change((n - this._length) * this.entryBytes);
    this._length = n;
  }

  /** bytes of one entry: key, value and position */
  get entryBytes(): number {
    return 2 * this.headDim * (this.dtype === 'f16' ? 2 : 4) + 4;
  }

  /** Keys of entries [first, first + count) as float32 [count, headDim]: a view of an f32 cache, a widened copy of an f16 one. */
  keyRows(first = 0, count = this.length - first): Float32Array {
    return widen(this.keyData, first * this.headDim, count * this.headDim);
  }

  /** Values of entries [first, first + count), as keyRows. */
  valueRows(first = 0, count = this.length - first): Float32Array {
    return widen(this.valueData, first * this.headDim, count * this.headDim);
  }

  private grow(min: number): void {
    const cap = Math.max(min, Math.ceil(this.capacity * 1.5), 16);
    const d = this.headDim;
    const k = rowStore(this.dtype, cap * d);
    k.set(this.keyData.subarray(0, this.length * d));
    const v = rowStore(this.dtype, cap * d);
    v.set(this.valueData.subarray(0, this.length * d));
    const p = new Int32Array(cap);
    p.set(this.positions.subarray(0, this.length));
    this.keyData = k;
    this.valueData = v;
    this.positions = p;
  }

  /** Reserve room for `extra` more entries (prefill knows its size up front). */
  reserve(extra: number): void {
    if (this.length + extra > this.capacity) this.grow(this.length + extra);
  }

  /**
   * Append `rows` entries. Row r's key starts at `keys[r * stride + offset]` (a [rows, Hkv, d] block is
   * read with stride Hkv*d and offset head*d). Positions must be above every stored position. `k` copies the
   * rows (the engine passes its kernels: one native call per block instead of two copies per row), rounding them
   * to halves in an f16 cache.
   */
  append(
    rows: number,
    keys: Float32Array,
    values: Float32Array,
    stride: number,
    offset: number,
    positions: Int32Array,
    k: Pick<Kernels, 'copyRows'> = jsKernels,
  ): void {
    for (let r = 0; r < rows; r++) {
      const prev = r > 0 ? positions[r - 1] : this.length > 0 ? this.positions[this.length - 1] : null;
      assert(prev === null || positions[r] > prev, 'cache positions must increase');
    }
    this.reserve(rows);
    const d = this.headDim;
    k.copyRows(this.keyData, this.length * d, keys, offset, stride, rows, d);
    k.copyRows(this.valueData, this.length * d, values, offset, stride, rows, d);
    this.positions.set(positions.subarray(0, rows), this.length);
    this.length += rows;
  }

  /** Keep only the entries at the given positions (sorted ascending, each present). Memory shrinks to fit. */
  retain(keep: Int32Array): void {
    const d = this.headDim;
    const k = rowStore(this.dtype, keep.length * d);
    const v = rowStore(this.dtype, keep.length * d);
    const p = new Int32Array(keep.length);
    let j = 0;
    for (let i = 0; i < keep.length; i++) {
      const pos = keep[i];
      if (i > 0 && pos <= keep[i - 1])
        throw new KvevictError(`retain: positions must be sorted and unique (got ${keep[i - 1]} then ${pos})`);
      while (j < this.length && this.positions[j] < pos) j++;
      if (j >= this.length || this.positions[j] !== pos) throw new KvevictError(`retain: position ${pos} is not in the cache`);
      k.set(this.keyData.subarray(j * d, (j + 1) * d), i * d);
      v.set(this.valueData.subarray(j * d, (j + 1) * d), i * d);
      p[i] = pos;
    }
    this.keyData = k;
    this.valueData = v;
    this.positions = p;
    this.length = keep.length;
  }

  /** Drop every entry whose position is >= `pos` (e.g. pseudo or soft tokens appended after the prompt). */
  truncateFrom(pos: number): void {
    let n = this.length;
    while (n > 0 && this.positions[n - 1] >= pos) n--;
    this.length = n;
  }

  /** Live entries (not capacity). */
  get bytes(): number {
    return this.length * this.entryBytes;
  }

  /** Allocated bytes, capacity included. */
  get allocatedBytes(): number {
    return this.keyData.byteLength + this.valueData.byteLength + this.positions.byteLength;
  }

  /** A copy with room for `extra` more entries. */
  clone(extra = 0): HeadCache {
    const c = new HeadCache(this.headDim, this.length + extra, this.dtype);
    c.keyData.set(this.keyData.subarray(0, this.length * this.headDim));
    c.valueData.set(this.valueData.subarray(0, this.length * this.headDim));
    c.positions.set(this.positions.subarray(0, this.length));
    c.length = this.length;
    return c;
  }
}

/** `count` values of cache rows from `offset` as float32: a view of float32 rows, halves widened into a new array. */
function widen(rows: CacheRows, offset: number, count: number): Float32Array {
  if (rows instanceof Float32Array) return rows.subarray(offset, offset + count);
  const out = new Float32Array(count);
  kernels().halfToFloat(rows.subarray(offset, offset + count), out, count);
  return out;
}

/** The KV cache of a model: per layer, per KV head, with lengths that may differ per head. */
export class KvCache {
  readonly layers: HeadCache[][];
  /** live and peak bytes, as the heads report them */
  readonly meter = new CacheMeter();

  constructor(
    readonly numLayers: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly dtype: KvDtype = 'f32',
  ) {
    checkKvDtype(dtype);
    this.layers = [];
    for (let l = 0; l < numLayers; l++) {
      const heads: HeadCache[] = [];
      for (let h = 0; h < numKvHeads; h++) heads.push(this.adopt(new HeadCache(headDim, 0, dtype)));
      this.layers.push(heads);
    }
  }

  head(layer: number, kvHead: number): HeadCache {
    return this.layers[layer][kvHead];
  }

  /** Put `head` in at (layer, kvHead) (replacing what was there), its bytes counted from now on. */
  setHead(layer: number, kvHead: number, head: HeadCache): void {
    this.layers[layer][kvHead].meter?.change(-this.layers[layer][kvHead].bytes);
    this.layers[layer][kvHead] = this.adopt(head);
  }

  private adopt(head: HeadCache): HeadCache {
    assert(head.dtype === this.dtype && head.headDim === this.headDim, 'a head joins a cache of its own dtype and head_dim');
    head.meter = this.meter;
    this.meter.change(head.bytes);
    return head;
  }

  /** The most bytes the cache has held at once (keys, values and positions of live entries). */
  get peakBytes(): number {
    return this.meter.peak;
  }

  /** Keep, for one layer and KV head, only the sorted positions given. */
  retain(layer: number, kvHead: number, positions: Int32Array): void {
    this.layers[layer][kvHead].retain(positions);
  }

  /** Apply a whole plan: [layer][kvHead] -> sorted positions to keep. */
  retainAll(plan: Int32Array[][]): void {
    for (let l = 0; l < this.numLayers; l++) for (let h = 0; h < this.numKvHeads; h++) this.retain(l, h, plan[l][h]);
  }

  truncateFrom(pos: number): void {
    for (const layer of this.layers) for (const h of layer) h.truncateFrom(pos);
  }

  /** Bytes held by live entries (keys, values and positions). */
  get bytes(): number {
    let b = 0;
    for (const layer of this.layers) for (const h of layer) b += h.bytes;
    return b;
  }

  get allocatedBytes(): number {
    let b = 0;
    for (const layer of this.layers) for (const h of layer) b += h.allocatedBytes;
    return b;
  }

  /** Largest position stored + 1 (the next position to feed), or 0 when empty. */
  get nextPosition(): number {
    let m = -1;
    for (const layer of this.layers) for (const h of layer) if (h.length) m = Math.max(m, h.positions[h.length - 1]);
    return m + 1;
  }

  clone(): KvCache {
    const c = new KvCache(this.numLayers, this.numKvHeads, this.headDim, this.dtype);
    for (let l = 0; l < this.numLayers; l++) for (let h = 0; h < this.numKvHeads; h++) c.setHead(l, h, this.layers[l][h].clone());
    c.meter.peak = c.meter.live;
    return c;
  }
}
