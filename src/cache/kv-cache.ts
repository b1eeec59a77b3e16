import { KvevictError, assert } from '../errors.js';
import { jsKernels } from '../kernels/js.js';
import type { Kernels } from '../kernels/types.js';

/** Live bytes of a whole cache and the most it has held: the heads report every change to it. */
export class CacheMeter {
  live = 0;
  peak = 0;

  change(delta: number): void {
    this.live += delta;
    if (this.live > this.peak) this.peak = this.live;
  }
}

/**
 * One KV head of one layer: compact keys, values and positions, sorted by ascending position.
 * Keys are stored after RoPE, so an entry keeps its original position forever.
 */
export class HeadCache {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
  private _length = 0;
  /** the cache this head belongs to counts its bytes here */
  meter: CacheMeter | null = null;

  constructor(
    readonly headDim: number,
    capacity = 0,
  ) {
    this.keys = new Float32Array(capacity * headDim);
    this.values = new Float32Array(capacity * headDim);
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
    return 2 * this.headDim * 4 + 4;
  }

  private grow(min: number): void {
    const cap = Math.max(min, Math.ceil(this.capacity * 1.5), 16);
    const d = this.headDim;
    const k = new Float32Array(cap * d);
    k.set(this.keys.subarray(0, this.length * d));
    const v = new Float32Array(cap * d);
    v.set(this.values.subarray(0, this.length * d));
    const p = new Int32Array(cap);
    p.set(this.positions.subarray(0, this.length));
    this.keys = k;
    this.values = v;
    this.positions = p;
  }

  /** Reserve room for `extra` more entries (prefill knows its size up front). */
  reserve(extra: number): void {
    if (this.length + extra > this.capacity) this.grow(this.length + extra);
  }

  /**
   * Append `rows` entries. Row r's key starts at `keys[r * stride + offset]` (a [rows, Hkv, d] block is
   * read with stride Hkv*d and offset head*d). Positions must be above every stored position. `k` copies the
   * rows (the engine passes its kernels: one native call per block instead of two copies per row).
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
    k.copyRows(this.keys, this.length * d, keys, offset, stride, rows, d);
    k.copyRows(this.values, this.length * d, values, offset, stride, rows, d);
    this.positions.set(positions.subarray(0, rows), this.length);
    this.length += rows;
  }

  /** Keep only the entries at the given positions (sorted ascending, each present). Memory shrinks to fit. */
  retain(keep: Int32Array): void {
    const d = this.headDim;
    const k = new Float32Array(keep.length * d);
    const v = new Float32Array(keep.length * d);
    const p = new Int32Array(keep.length);
    let j = 0;
    for (let i = 0; i < keep.length; i++) {
      const pos = keep[i];
      if (i > 0 && pos <= keep[i - 1])
        throw new KvevictError(`retain: positions must be sorted and unique (got ${keep[i - 1]} then ${pos})`);
      while (j < this.length && this.positions[j] < pos) j++;
      if (j >= this.length || this.positions[j] !== pos) throw new KvevictError(`retain: position ${pos} is not in the cache`);
      k.set(this.keys.subarray(j * d, (j + 1) * d), i * d);
      v.set(this.values.subarray(j * d, (j + 1) * d), i * d);
      p[i] = pos;
    }
    this.keys = k;
    this.values = v;
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
    return this.keys.byteLength + this.values.byteLength + this.positions.byteLength;
  }

  clone(): HeadCache {
    const c = new HeadCache(this.headDim, this.length);
    c.keys.set(this.keys.subarray(0, this.length * this.headDim));
    c.values.set(this.values.subarray(0, this.length * this.headDim));
    c.positions.set(this.positions.subarray(0, this.length));
    c.length = this.length;
    return c;
  }
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
  ) {
    this.layers = [];
    for (let l = 0; l < numLayers; l++) {
      const heads: HeadCache[] = [];
      for (let h = 0; h < numKvHeads; h++) heads.push(this.adopt(new HeadCache(headDim)));
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
    const c = new KvCache(this.numLayers, this.numKvHeads, this.headDim);
    for (let l = 0; l < this.numLayers; l++) for (let h = 0; h < this.numKvHeads; h++) c.setHead(l, h, this.layers[l][h].clone());
    c.meter.peak = c.meter.live;
    return c;
  }
}
