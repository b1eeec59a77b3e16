/**
 * IEEE 754 half precision (f16) <-> float32 in plain TypeScript: the loaders' F16 tensors, the GGUF writer and
 * the TypeScript kernels' f16 weights all convert here (the native kernels use the CPU's own instructions).
 */

/** The value of half bits `h` (exact in float32). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let table: Float32Array | null = null;

/** Every half's float32 value, indexed by its bits (built on first use). */
export function halfTable(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloat(h);
  return (table = t);
}

/** float32 bit pattern `u` -> the nearest half's bits, ties to even; beyond the half range, infinity. */
export function floatBitsToHalf(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let m = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e;
    let hm = m >>> shift;
    const rem = m & ((1 << shift) - 1),
      halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && hm & 1)) hm++;
    return sign | hm;
  }
  let hm = m >>> 13;
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && hm & 1)) {
    if (++hm === 0x400) {
      hm = 0;
      if (++e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | hm;
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The nearest half's bits of the float32 value of `x`. */
export function floatToHalf(x: number): number {
  scratch[0] = x;
  return floatBitsToHalf(scratchBits[0]);
}
