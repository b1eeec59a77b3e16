/**
 * The writer's quantizers: llama.cpp's reference rounding (quantize_row_*_ref in ggml-quants.c, the path
 * llama-quantize takes without an importance matrix), in float32 arithmetic as ggml does it.
 */
import { floatToHalf, halfTable } from '../util/half.js';
import { quantFormat, QuantMatrix, type QuantType } from './formats.js';

const f32 = Math.fround;

/** ggml's nearest_int: float32 round to nearest, ties to even. */
function nearestInt(x: number): number {
  return f32(f32(x) + 12582912) - 12582912;
}

/** C's (int8_t) cast of a float: truncation toward zero. */
const trunc = (x: number) => Math.trunc(x);

/** C's roundf: halves away from zero. */
const roundf = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

class Out {
  constructor(
    readonly d: Uint8Array,
    public o: number,
  ) {}
  half(at: number, v: number): number {
    const h = floatToHalf(v);
    this.d[at] = h & 255;
    this.d[at + 1] = h >> 8;
    return halfTable()[h];
  }
}

function quantizeQ8_0(x: Float32Array, o: Out): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[j]));
  const d = f32(amax / 127);
  const id = d ? f32(1 / d) : 0;
  o.half(o.o, d);
  for (let j = 0; j < 32; j++) o.d[o.o + 2 + j] = roundf(f32(x[j] * id)) & 255;
}

/** q4_0 / q5_0: symmetric, the scale from the value of largest magnitude (max / -8, max / -16). */
function quantizeSymmetric(x: Float32Array, o: Out, bits: 4 | 5): void {
  let amax = 0,
    max = 0;
  for (let j = 0; j < 32; j++) {
    if (amax < Math.abs(x[j])) {
      amax = Math.abs(x[j]);
      max = x[j];
    }
  }
  const levels = bits === 4 ? 8 : 16;
  const d = f32(max / -levels);
  const id = d ? f32(1 / d) : 0;
  o.half(o.o, d);
  const top = 2 * levels - 1;
  const q = (v: number) => Math.min(top, trunc(f32(f32(v * id) + levels + 0.5)));
  packLowHigh(x, o, bits, q, o.o + 2);
}

/** q4_1 / q5_1: affine, min and (max - min) / levels. */
function quantizeAffine(x: Float32Array, o: Out, bits: 4 | 5): void {
  let min = Infinity,
    max = -Infinity;
  for (let j = 0; j < 32; j++) {
    min = Math.min(min, x[j]);
    max = Math.max(max, x[j]);
  }
  const top = bits === 4 ? 15 : 31;
  const d = f32(f32(max - min) / top);
  const id = d ? f32(1 / d) : 0;
  o.half(o.o, d);
  o.half(o.o + 2, min);
  const q = (v: number) => Math.min(top, trunc(f32(f32(f32(v - min) * id) + 0.5)));
  packLowHigh(x, o, bits, q, o.o + 4);
}

/** 32 levels as ggml's q4_x / q5_x store them: value j in the low nibble of byte j, value j + 16 in its high nibble; 5th bits in qh. */
function packLowHigh(x: Float32Array, o: Out, bits: 4 | 5, q: (v: number) => number, at: number): void {
  let qh = 0;
  const qs = bits === 5 ? at + 4 : at;
  for (let j = 0; j < 16; j++) {
    const a = q(x[j]),
      b = q(x[j + 16]);
    o.d[qs + j] = (a & 15) | ((b & 15) << 4);
    qh |= ((a & 0x10) >> 4) << j;
    qh |= ((b & 0x10) >> 4) << (j + 16);
  }
  if (bits === 5) for (let i = 0; i < 4; i++) o.d[at + i] = (qh >>> (8 * i)) & 255;
}

/** ggml's make_qkx2_quants: the scale and min of a K-quant sub-block, searched over nstep candidate scales. */
function makeQkx2(
  n: number,
  nmax: number,
  x: Float32Array,
  w: Float32Array,
  L: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): { scale: number; min: number } {
  let min = x[0],
    max = x[0];
  let sumW = w[0],
    sumX = f32(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sumW = f32(sumW + w[i]);
    sumX = f32(sumX + f32(w[i] * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    return { scale: 0, min: -min };
  }
  let iscale = f32(nmax / f32(max - min));
  let scale = f32(1 / iscale);
  let best = 0;
  for (let i = 0; i < n; i++) {
    L[i] = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(x[i] - min)))));
    const diff = f32(f32(f32(scale * L[i]) + min) - x[i]);
    best = f32(best + f32(w[i] * f32(diff * diff)));
  }
  const aux = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    iscale = f32(f32(f32(rmin + f32(rdelta * is)) + nmax) / f32(max - min));
    let sumL = 0,
      sumL2 = 0,
      sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(x[i] - min)))));
      aux[i] = l;
      sumL = f32(sumL + f32(w[i] * l));
      sumL2 = f32(sumL2 + f32(f32(w[i] * l) * l));
      sumXL = f32(sumXL + f32(f32(w[i] * l) * x[i]));
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL));
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D);
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f32(sumXL / sumL2);
      }
      let err = 0;
      for (let i = 0; i < n; i++) {
        const diff = f32(f32(f32(thisScale * aux[i]) + thisMin) - x[i]);
        err = f32(err + f32(w[i] * f32(diff * diff)));
      }
      if (err < best) {
        L.set(aux.subarray(0, n));
        best = err;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return { scale, min: -min };
}

/** q4_K / q5_K (quantize_row_q4_K_ref, quantize_row_q5_K_ref): 8 sub-blocks of 32 with 6-bit scales and mins. */
function quantizeK45(x: Float32Array, o: Out, five: boolean): void {
  const nmax = five ? 31 : 15;
  const L = new Uint8Array(256);
  const scales = new Float32Array(8),
    mins = new Float32Array(8);
  const w = new Float32Array(32);
  let maxScale = 0,
    maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const xs = x.subarray(32 * j, 32 * j + 32);
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f32(sumX2 + f32(xs[l] * xs[l]));
    const av = f32(Math.sqrt(f32(sumX2 / 32)));
    for (let l = 0; l < 32; l++) w[l] = f32(av + Math.abs(xs[l]));
    const r = makeQkx2(32, nmax, xs, w, L.subarray(32 * j), five ? -0.5 : -1, 0.1, five ? 15 : 20);
    scales[j] = r.scale;
    mins[j] = r.min;
    if (r.scale > maxScale) maxScale = r.scale;
    if (r.min > maxMin) maxMin = r.min;
  }
  const invScale = maxScale > 0 ? f32(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f32(63 / maxMin) : 0;
  const sc = o.o + 4;
  o.d.fill(0, sc, sc + 12);
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(f32(invScale * scales[j])) & 255);
    const lm = Math.min(63, nearestInt(f32(invMin * mins[j])) & 255);
    if (j < 4) {
      o.d[sc + j] = ls;
      o.d[sc + j + 4] = lm;
    } else {
      o.d[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      o.d[sc + j - 4] |= (ls >> 4) << 6;
      o.d[sc + j] |= (lm >> 4) << 6;
    }
  }
  const d = o.half(o.o, f32(maxScale / 63));
  const dmin = o.half(o.o + 2, f32(maxMin / 63));
  for (let j = 0; j < 8; j++) {
    const q = o.d;
    const s = j < 4 ? q[sc + j] & 63 : (q[sc + j + 4] & 0xf) | ((q[sc + j - 4] >> 6) << 4);
    const m = j < 4 ? q[sc + j + 4] & 63 : (q[sc + j + 4] >> 4) | ((q[sc + j] >> 6) << 4);
    const dj = f32(d * s);
    if (!dj) continue;
    const dm = f32(dmin * m);
    for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(nmax, nearestInt(f32(f32(x[32 * j + i] + dm) / dj))));
  }
  if (five) {
    const qh = o.o + 16,
      ql = o.o + 48;
    o.d.fill(0, qh, qh + 32);
    for (let n = 0, m1 = 1, m2 = 2; n < 256; n += 64, m1 <<= 2, m2 <<= 2) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j],
          l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          o.d[qh + j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          o.d[qh + j] |= m2;
        }
        o.d[ql + n / 2 + j] = l1 | (l2 << 4);
      }
    }
  } else {
    const qs = o.o + 16;
    for (let j = 0; j < 256; j += 64) for (let l = 0; l < 32; l++) o.d[qs + j / 2 + l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

/** ggml's make_qx_quants with rmse_type 1 (weights x^2), no importance: a signed scale for 16 values. */
function makeQx(n: number, nmax: number, x: Float32Array, L: Int8Array): number {
  let max = 0,
    amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f32(-nmax / max);
  let sumlx = 0,
    suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * x[i]))));
    L[i] = l + nmax;
    const w = f32(x[i] * x[i]);
    sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  let scale = suml2 ? f32(sumlx / suml2) : 0;
  let best = f32(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f32(-f32(nmax + f32(0.1 * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * x[i]))));
      const w = f32(x[i] * x[i]);
      sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
      suml2 = f32(suml2 + f32(f32(w * l) * l));
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * x[i]))));
      scale = f32(sumlx / suml2);
      best = f32(scale * sumlx);
    }
  }
  return scale;
}

/** q6_K (quantize_row_q6_K_ref): 16 groups of 16 with 8-bit scales, 6-bit values. */
function quantizeQ6K(x: Float32Array, o: Out): void {
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  let maxScale = 0,
    maxAbs = 0;
  for (let ib = 0; ib < 16; ib++) {
    const s = makeQx(16, 32, x.subarray(16 * ib), L.subarray(16 * ib));
    scales[ib] = s;
    if (Math.abs(s) > maxAbs) {
      maxAbs = Math.abs(s);
      maxScale = s;
    }
  }
  o.d.fill(0, o.o, o.o + 210);
  if (maxAbs < 1e-15) return;
  const iscale = f32(-128 / maxScale);
  const d = o.half(o.o + 208, f32(1 / iscale));
  const sc = o.o + 192;
  for (let ib = 0; ib < 16; ib++) o.d[sc + ib] = Math.min(127, nearestInt(f32(iscale * scales[ib]))) & 255;
  for (let j = 0; j < 16; j++) {
    const dj = f32(d * ((o.d[sc + j] << 24) >> 24));
    if (!dj) continue;
    for (let i = 0; i < 16; i++) L[16 * j + i] = Math.max(-32, Math.min(31, nearestInt(f32(x[16 * j + i] / dj)))) + 32;
  }
  for (let j = 0, ql = o.o, qh = o.o + 128; j < 256; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l],
        q2 = L[j + l + 32],
        q3 = L[j + l + 64],
        q4 = L[j + l + 96];
      o.d[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
      o.d[ql + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
      o.d[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

/** Quantize W[rows, cols] (cols a multiple of the block size) into a new QuantMatrix. */
export function quantizeMatrix(type: QuantType, w: Float32Array, rows: number, cols: number): QuantMatrix {
  const f = quantFormat(type);
  const perRow = cols / f.blockSize;
  const data = new Uint8Array(rows * perRow * f.blockBytes);
  const o = new Out(data, 0);
  for (let blk = 0; blk < rows * perRow; blk++) {
    const x = w.subarray(blk * f.blockSize, (blk + 1) * f.blockSize);
    o.o = blk * f.blockBytes;
    switch (type) {
      case 'q8_0':
        quantizeQ8_0(x, o);
        break;
      case 'q4_0':
        quantizeSymmetric(x, o, 4);
        break;
      case 'q5_0':
        quantizeSymmetric(x, o, 5);
        break;
      case 'q4_1':
        quantizeAffine(x, o, 4);
        break;
      case 'q5_1':
        quantizeAffine(x, o, 5);
        break;
      case 'q4_k':
        quantizeK45(x, o, false);
        break;
      case 'q5_k':
        quantizeK45(x, o, true);
        break;
      case 'q6_k':
        quantizeQ6K(x, o);
        break;
    }
  }
  return new QuantMatrix(type, rows, cols, data);
}
