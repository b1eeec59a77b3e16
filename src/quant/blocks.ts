/**
 * Decoding and encoding of ggml's blocks in plain TypeScript: the portable twin of native/quant.c and the
 * writer's quantizers. Every format decodes to integers and per-16-weight affine terms: weight i of group g
 * is a[g] * q[i] + b[g] (float32), which is exactly how ggml's dequantize_row_* computes it, and lets the
 * integer products of the decode (activations quantized to 8 bits) be written once for all formats.
 */
import { halfTable } from '../util/half.js';
import { quantFormat, type QuantMatrix, type QuantType } from './formats.js';

const f32 = Math.fround;

/** A block decoded: integers q[blockSize], and a, b per group of 16 weights (weight = a * q + b). */
export interface DecodedBlock {
  q: Int32Array;
  a: Float32Array;
  b: Float32Array;
}

export function decodedBlock(type: QuantType): DecodedBlock {
  const n = quantFormat(type).blockSize;
  return { q: new Int32Array(n), a: new Float32Array(n / 16), b: new Float32Array(n / 16) };
}

/** ggml's 6-bit scale and min j of a K-quant block's 12 packed bytes at `s` */
function scaleMinK4(d: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [d[s + j] & 63, d[s + j + 4] & 63];
  return [(d[s + j + 4] & 0xf) | ((d[s + j - 4] >> 6) << 4), (d[s + j + 4] >> 4) | ((d[s + j] >> 6) << 4)];
}

/** Decode the block at byte `o` of `d` into `out`. */
export function decodeBlock(type: QuantType, d: Uint8Array, o: number, out: DecodedBlock): void {
  const h = halfTable();
  const half = (at: number) => h[d[at] | (d[at + 1] << 8)];
  const { q, a, b } = out;
  switch (type) {
    case 'q8_0': {
      const s = half(o);
      for (let i = 0; i < 32; i++) q[i] = (d[o + 2 + i] << 24) >> 24;
      a.fill(s);
      b.fill(0);
      return;
    }
    case 'q4_0':
    case 'q4_1': {
      const s = half(o);
      const m = type === 'q4_1' ? half(o + 2) : 0;
      const qs = o + (type === 'q4_1' ? 4 : 2);
      const off = type === 'q4_0' ? 8 : 0;
      for (let j = 0; j < 16; j++) {
        q[j] = (d[qs + j] & 15) - off;
        q[j + 16] = (d[qs + j] >> 4) - off;
      }
      a.fill(s);
      b.fill(m);
      return;
    }
    case 'q5_0':
    case 'q5_1': {
      const s = half(o);
      const m = type === 'q5_1' ? half(o + 2) : 0;
      const hb = o + (type === 'q5_1' ? 4 : 2);
      const qh = (d[hb] | (d[hb + 1] << 8) | (d[hb + 2] << 16) | (d[hb + 3] << 24)) >>> 0;
      const qs = hb + 4;
      const off = type === 'q5_0' ? 16 : 0;
      for (let j = 0; j < 16; j++) {
        q[j] = ((d[qs + j] & 15) | (((qh >>> j) << 4) & 0x10)) - off;
        q[j + 16] = ((d[qs + j] >> 4) | ((qh >>> (j + 12)) & 0x10)) - off;
      }
      a.fill(s);
      b.fill(m);
      return;
    }
    case 'q4_k':
    case 'q5_k': {
      const dd = half(o),
        dmin = half(o + 2);
      const sc = o + 4;
      const five = type === 'q5_k';
      const qh = o + 16;
      let ql = five ? o + 48 : o + 16;
      for (let j = 0; j < 4; j++) {
        for (let t = 0; t < 2; t++) {
          const [s, m] = scaleMinK4(d, sc, 2 * j + t);
          const g = (2 * j + t) * 2;
          a[g] = a[g + 1] = f32(dd * s);
          b[g] = b[g + 1] = -f32(dmin * m);
          const bit = 1 << (2 * j + t);
          for (let l = 0; l < 32; l++) {
            const nib = t === 0 ? d[ql + l] & 15 : d[ql + l] >> 4;
            q[64 * j + 32 * t + l] = nib + (five && d[qh + l] & bit ? 16 : 0);
          }
        }
        ql += 32;
      }
      return;
    }
    case 'q6_k': {
      const dd = half(o + 208);
      for (let n = 0; n < 2; n++) {
        const ql = o + 64 * n,
          qh = o + 128 + 32 * n,
          sc = o + 192 + 8 * n;
        for (let l = 0; l < 32; l++) {
          const y = 128 * n + l;
          q[y] = ((d[ql + l] & 15) | ((d[qh + l] & 3) << 4)) - 32;
          q[y + 32] = ((d[ql + l + 32] & 15) | (((d[qh + l] >> 2) & 3) << 4)) - 32;
          q[y + 64] = ((d[ql + l] >> 4) | (((d[qh + l] >> 4) & 3) << 4)) - 32;
          q[y + 96] = ((d[ql + l + 32] >> 4) | (((d[qh + l] >> 6) & 3) << 4)) - 32;
        }
        for (let g = 0; g < 8; g++) {
          a[8 * n + g] = f32(dd * ((d[sc + g] << 24) >> 24));
          b[8 * n + g] = 0;
        }
      }
      return;
    }
  }
}

/** Rows [first, first + count) of `m` as float32, row-major into `out` (ggml's dequantize_row_*). */
export function dequantizeRows(m: QuantMatrix, first: number, count: number, out: Float32Array): void {
  const { blockSize, blockBytes } = m.format;
  const blk = decodedBlock(m.type);
  const blocks = (count * m.cols) / blockSize;
  const base = first * m.rowBytes;
  for (let i = 0; i < blocks; i++) {
    decodeBlock(m.type, m.data, base + i * blockBytes, blk);
    const y = i * blockSize;
    for (let j = 0; j < blockSize; j++) out[y + j] = f32(f32(blk.a[j >> 4] * blk.q[j]) + blk.b[j >> 4]);
  }
}

// ---------------------------------------------------------------- activations for the integer products

/** Activations quantized in blocks of 32 (8-bit, per-block float32 scale, per-16 sums), as the decode's products read them. */
export interface QuantizedVector {
  q: Int8Array;
  d: Float32Array;
  /** sum of q over each group of 16 */
  sums: Int32Array;
}

/** Round to nearest, ties to even, in float32 (the native kernel rounds the same way). */
function rintf(x: number): number {
  return f32(f32(x + 12582912) - 12582912);
}

/** x[k] (k a multiple of 32) to 8-bit blocks: d = max|x| / 127, q = rint(x / d), as native/quant.c does. */
export function quantizeActivations(x: Float32Array, k: number): QuantizedVector {
  const nb = k / 32;
  const out: QuantizedVector = { q: new Int8Array(k), d: new Float32Array(nb), sums: new Int32Array(k / 16) };
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[32 * b + i]));
    const d = f32(amax / 127);
    const id = d ? f32(1 / d) : 0;
    out.d[b] = d;
    for (let i = 0; i < 32; i++) {
      const v = rintf(f32(x[32 * b + i] * id));
      out.q[32 * b + i] = v;
      out.sums[2 * b + (i >> 4)] += v;
    }
  }
  return out;
}

/**
 * y[r] (+)= W[r, :] . x with W in a block format and x quantized to 8 bits (quantizeActivations): per group of 16,
 * a * sum(q * xq) + b * sum(xq), times the activation block's scale. The twin of native/quant.c's products.
 */
export function quantGemv(m: QuantMatrix, xq: QuantizedVector, y: Float32Array, accumulate: boolean): void {
  const { blockSize, blockBytes } = m.format;
  const blk = decodedBlock(m.type);
  const perRow = m.cols / blockSize;
  for (let r = 0; r < m.rows; r++) {
    let acc = 0;
    for (let i = 0; i < perRow; i++) {
      decodeBlock(m.type, m.data, r * m.rowBytes + i * blockBytes, blk);
      const x0 = i * blockSize;
      for (let g = 0; g < blockSize / 16; g++) {
        let isum = 0;
        for (let j = 0; j < 16; j++) isum += blk.q[16 * g + j] * xq.q[x0 + 16 * g + j];
        const gx = (x0 >> 4) + g;
        acc += xq.d[gx >> 1] * (blk.a[g] * isum + blk.b[g] * xq.sums[gx]);
      }
    }
    y[r] = accumulate ? y[r] + acc : acc;
  }
}
