/**
 * An independent float64 decoder of ggml's block formats, written from the block layouts of ggml-common.h
 * (one weight at a time, by its byte and bit positions), sharing nothing with src/quant or native/quant.c.
 */
import type { QuantType } from '../../src/quant/formats.js';

/** IEEE half bits to their value, by the definition. */
export function half64(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const exp = (bits >> 10) & 31;
  const frac = bits & 1023;
  if (exp === 0) return sign * frac * Math.pow(2, -24);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
}

const u16 = (b: Uint8Array, at: number) => b[at] + 256 * b[at + 1];
const s8 = (v: number) => (v >= 128 ? v - 256 : v);
const bit = (b: Uint8Array, at: number, i: number) => (b[at + Math.floor(i / 8)] >> (i % 8)) & 1;
const lowNibble = (v: number) => v % 16;
const highNibble = (v: number) => Math.floor(v / 16);

/** The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block's 12 scale bytes at `at`. */
function kScaleMin(b: Uint8Array, at: number, j: number): [number, number] {
  const q = (i: number) => b[at + i];
  if (j < 4) return [q(j) % 64, q(j + 4) % 64];
  return [lowNibble(q(j + 4)) + 16 * Math.floor(q(j - 4) / 64), highNibble(q(j + 4)) + 16 * Math.floor(q(j) / 64)];
}

/** Weight i of the block of `type` that starts at byte `at`. */
export function blockWeight64(type: QuantType, b: Uint8Array, at: number, i: number): number {
  switch (type) {
    case 'q8_0':
      return half64(u16(b, at)) * s8(b[at + 2 + i]);
    case 'q4_0':
    case 'q4_1': {
      const qs = at + (type === 'q4_1' ? 4 : 2);
      const v = i < 16 ? lowNibble(b[qs + i]) : highNibble(b[qs + i - 16]);
      return type === 'q4_0' ? half64(u16(b, at)) * (v - 8) : half64(u16(b, at)) * v + half64(u16(b, at + 2));
    }
    case 'q5_0':
    case 'q5_1': {
      const qh = at + (type === 'q5_1' ? 4 : 2);
      const qs = qh + 4;
      const v = (i < 16 ? lowNibble(b[qs + i]) : highNibble(b[qs + i - 16])) + 16 * bit(b, qh, i);
      return type === 'q5_0' ? half64(u16(b, at)) * (v - 16) : half64(u16(b, at)) * v + half64(u16(b, at + 2));
    }
    case 'q4_k':
    case 'q5_k': {
      const j = Math.floor(i / 32); // sub-block
      const [sc, m] = kScaleMin(b, at + 4, j);
      const qs = at + (type === 'q5_k' ? 48 : 16);
      const byte = b[qs + 32 * Math.floor(j / 2) + (i % 32)];
      let v = j % 2 === 0 ? lowNibble(byte) : highNibble(byte);
      if (type === 'q5_k') v += 16 * ((b[at + 16 + (i % 32)] >> j) & 1);
      return half64(u16(b, at)) * sc * v - half64(u16(b, at + 2)) * m;
    }
    case 'q6_k': {
      const half = Math.floor(i / 128),
        r = i % 128,
        quarter = Math.floor(r / 32),
        l = r % 32;
      const ql = at + 64 * half + (quarter % 2 === 1 ? 32 : 0) + l;
      const low = quarter < 2 ? lowNibble(b[ql]) : highNibble(b[ql]);
      const high = (b[at + 128 + 32 * half + l] >> (2 * quarter)) & 3;
      const scale = s8(b[at + 192 + Math.floor(i / 16)]);
      return half64(u16(b, at + 208)) * scale * (low + 16 * high - 32);
    }
  }
}
