import { closeSync, existsSync, fstatSync, openSync, readSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { KvevictError } from '../errors.js';
import { floatBitsToHalf, halfTable } from '../util/half.js';

export type DType = 'F32' | 'F16' | 'BF16';
/** What a file may store: the float dtypes of weights, and I32 for positions and token ids (compressed contexts). */
export type StoredDType = DType | 'I32';
const BYTES: Record<StoredDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4 };

export interface TensorInfo {
  name: string;
  dtype: StoredDType;
  shape: number[];
  /** byte offsets inside the file */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Read only the JSON header of a .safetensors file, validating every entry against the file size. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  if (!existsSync(file)) throw new KvevictError(`${file}: file not found`);
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new KvevictError(`${file}: truncated safetensors file (${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8)
      throw new KvevictError(`${file}: safetensors header length ${headerLen} runs past the end of the file (${size} bytes)`);
    const hb = Buffer.alloc(headerLen);
    readSync(fd, hb, 0, headerLen, 8);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(hb.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new KvevictError(`${file}: safetensors header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new KvevictError(`${file}: safetensors header is not a JSON object`);
    const dataStart = 8 + headerLen;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const nonNegInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    for (const [name, v] of Object.entries(raw)) {
      const shown = printable(name);
      if (name === '__metadata__') {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new KvevictError(`${file}: __metadata__ is not an object`);
        metadata = v as Record<string, string>;
        continue;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new KvevictError(`${file}: tensor ${shown}: its header entry is not an object`);
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e.dtype !== 'string' || !(e.dtype in BYTES))
        throw new KvevictError(
          `${file}: tensor ${shown} has unsupported dtype ${printable(String(e.dtype))} (supported: F32, F16, BF16, I32)`,
        );
      if (!Array.isArray(e.shape) || !e.shape.every(nonNegInt))
        throw new KvevictError(`${file}: tensor ${shown}: shape must be a list of non-negative integers`);
      if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every(nonNegInt)) {
        throw new KvevictError(`${file}: tensor ${shown}: data_offsets must be two non-negative integers`);
      }
      const dtype = e.dtype as StoredDType;
      const shape = e.shape as number[];
      const count = shape.reduce((a, b) => a * b, 1);
      const [b0, b1] = e.data_offsets as [number, number];
      if (b1 < b0 || b1 - b0 !== count * BYTES[dtype])
        throw new KvevictError(`${file}: tensor ${shown} has ${b1 - b0} bytes for shape [${shape}] ${dtype}`);
      if (dataStart + b1 > size)
        throw new KvevictError(`${file}: truncated: tensor ${shown} ends at byte ${dataStart + b1} but the file has ${size}`);
      tensors.set(name, { name, dtype, shape, begin: dataStart + b0, end: dataStart + b1 });
    }
    // the tensors tile the data area: no overlap, no gap, nothing after them (a shifted header length shows here)
    const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
    let at = dataStart;
    for (const t of spans) {
      if (t.begin < at)
        throw new KvevictError(
          `${file}: tensor ${printable(t.name)} overlaps the tensor before it (bytes ${t.begin - dataStart}..${t.end - dataStart})`,
        );
      if (t.begin > at)
        throw new KvevictError(`${file}: ${t.begin - at} bytes of the data area before tensor ${printable(t.name)} belong to no tensor`);
      at = t.end;
    }
    if (at !== size)
      throw new KvevictError(`${file}: ${size - at} bytes after the last tensor belong to no tensor (header length ${headerLen}?)`);
    return { file, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** A name or value for a one-line message: control characters escaped, cut to 80 characters. */
export function printable(s: string): string {
  const clean = JSON.stringify(s.length > 200 ? s.slice(0, 200) : s).slice(1, -1);
  return clean.length > 80 || s.length > 200 ? `${clean.slice(0, 80)}... (${s.length} characters)` : clean;
}

/** Convert raw little-endian bytes of a dtype to float32. */
export function toF32(bytes: Uint8Array, dtype: DType): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const n = bytes.byteLength / 2;
  const u16 = new Uint16Array(n);
  new Uint8Array(u16.buffer).set(bytes);
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
  } else {
    const t = halfTable();
    for (let i = 0; i < n; i++) out[i] = t[u16[i]];
  }
  return out;
}

/** Half bits -> value, and float -> nearest half bits (src/util/half.ts). */
export { halfToFloat as f16ToF32, floatToHalf as f32ToF16 } from '../util/half.js';

export function f32ToBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}

/**
 * Bulk float32 -> F16/BF16 bits (round to nearest even), the same values as f32ToF16 / f32ToBf16
 * without a per-value allocation: BF16 works on the bit pattern directly.
 */
export function encodeHalf(data: Float32Array, dtype: 'F16' | 'BF16'): Uint16Array {
  const n = data.length;
  const out = new Uint16Array(n);
  const u32 = new Uint32Array(data.buffer, data.byteOffset, n);
  if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = floatBitsToHalf(u32[i]);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const u = u32[i];
    out[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

function readBytes(info: TensorInfo, file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const bytes = Buffer.allocUnsafe(info.end - info.begin);
    const got = readSync(fd, bytes, 0, bytes.length, info.begin);
    if (got !== bytes.length) throw new KvevictError(`${file}: truncated while reading tensor ${info.name}`);
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** A float tensor's dtype; an integer tensor where floats belong is refused naming it. */
export function floatDtype(info: TensorInfo, file: string): DType {
  if (info.dtype === 'I32') throw new KvevictError(`${file}: tensor ${info.name} is I32 where a float tensor (F32, F16, BF16) belongs`);
  return info.dtype;
}

/** Read one tensor as float32. */
export function readTensorF32(info: TensorInfo, file: string): Float32Array {
  return toF32(readBytes(info, file), floatDtype(info, file));
}

/** Read one I32 tensor (positions, token ids). */
export function readTensorI32(info: TensorInfo, file: string): Int32Array {
  if (info.dtype !== 'I32') throw new KvevictError(`${file}: tensor ${info.name} is ${info.dtype}, expected I32`);
  const bytes = readBytes(info, file);
  const out = new Int32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Read one F16 tensor as its half bits (an f16 KV cache, kept as it was stored). */
export function readTensorHalfBits(info: TensorInfo, file: string): Uint16Array {
  if (info.dtype !== 'F16') throw new KvevictError(`${file}: tensor ${info.name} is ${info.dtype}, expected F16`);
  const bytes = readBytes(info, file);
  const out = new Uint16Array(bytes.byteLength / 2);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** float32 values, Int32Array for an I32 tensor, or Uint16Array of half bits for an F16 tensor (written as they are) */
  data: Float32Array | Int32Array | Uint16Array;
  /** stored dtype; float32 data is converted (default F32; I32 for Int32Array data, F16 for Uint16Array data) */
  dtype?: StoredDType;
}

/** Write a .safetensors file (atomically: a temporary file renamed into place). */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const blobs: Buffer[] = [];
  for (const t of tensors) {
    const dtype = t.dtype ?? (t.data instanceof Int32Array ? 'I32' : t.data instanceof Uint16Array ? 'F16' : 'F32');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`internal error: tensor ${t.name} has ${t.data.length} values for shape [${t.shape}]`);
    if ((dtype === 'I32') !== t.data instanceof Int32Array || (t.data instanceof Uint16Array && dtype !== 'F16'))
      throw new Error(`internal error: tensor ${t.name}: ${dtype} from ${t.data.constructor.name}`);
    const blob =
      dtype === 'F32' || dtype === 'I32' || t.data instanceof Uint16Array
        ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
        : Buffer.from(encodeHalf(t.data as Float32Array, dtype).buffer);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + blob.length] };
    offset += blob.length;
    blobs.push(blob);
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, Buffer.concat([len, hb, ...blobs]));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, file);
}
