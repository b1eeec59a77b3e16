/** Reading a GGUF v3 file: header, metadata and tensor table, each value checked against the file's size. */
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import { decodeToF32 } from '../weights.js';
import { printable } from '../safetensors.js';
import { QUANT_TYPES, quantFormat as quantFormatOfType, type QuantType } from '../../quant/formats.js';
import {
  DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_NUMBERS,
  GgmlType,
  GgufType,
  blockFormat,
  ggmlTypeName,
  type GgufFile,
  type GgufKv,
  type GgufScalar,
  type GgufTensorInfo,
  type GgufValue,
} from './format.js';

class ByteSource {
  pos = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    readonly file: string,
  ) {}
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  /** `n` bytes at the cursor, reading ahead in 1 MiB blocks */
  take(n: number, what: string): Buffer {
    if (this.pos + n > this.size)
      throw new KvevictError(`${this.file}: truncated GGUF file while reading ${what} (needs byte ${this.pos + n}, file has ${this.size})`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
      this.buf = Buffer.alloc(len);
      readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
    const off = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(off, off + n);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }
  u64(what: string): number {
    const v = this.take(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new KvevictError(`${this.file}: ${what} ${v} is too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} length`);
    if (n > this.size - this.pos)
      throw new KvevictError(`${this.file}: truncated or corrupt: ${what} claims ${n} bytes, and ${this.size - this.pos} remain`);
    return this.take(n, what).toString('utf8');
  }
}

function readScalar(src: ByteSource, type: GgufType, what: string): GgufScalar {
  if (type === GgufType.STRING) return src.str(what);
  if (type === GgufType.BOOL) return src.take(1, what).readUInt8(0) !== 0;
  const t = GGUF_NUMBERS.get(type);
  if (!t) throw new KvevictError(`${src.file}: unknown GGUF value type ${type} in ${printable(what)}`);
  return t.read(src.take(t.bytes, what));
}

/** Read a GGUF file's header: metadata and tensor infos (data is read on demand with readGgufTensorF32). */
export function readGguf(file: string): GgufFile {
  if (!existsSync(file)) throw new KvevictError(`${file}: file not found`);
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const src = new ByteSource(fd, size, file);
    if (size < 24 || src.u32('magic') !== GGUF_MAGIC) throw new KvevictError(`${file}: not a GGUF file (bad magic)`);
    const version = src.u32('version');
    if (version !== 2 && version !== 3) throw new KvevictError(`${file}: unsupported GGUF version ${version} (supported: 2, 3)`);
    const nTensors = src.u64('tensor count');
    const nKv = src.u64('metadata count');
    // every entry takes at least 8 bytes: counts past that cannot be real (checked before anything is allocated)
    if (nTensors > size / 8) throw new KvevictError(`${file}: GGUF tensor count ${nTensors} is more than the file could hold`);
    if (nKv > size / 8) throw new KvevictError(`${file}: GGUF metadata count ${nKv} is more than the file could hold`);
    const metadata = new Map<string, GgufKv>();
    for (let i = 0; i < nKv; i++) {
      const key = src.str('metadata key');
      const shown = printable(key);
      const type = src.u32(`type of ${shown}`) as GgufType;
      if (type === GgufType.ARRAY) {
        const arrayType = src.u32(`element type of ${shown}`) as GgufType;
        const n = src.u64(`length of ${shown}`);
        if (n > size - src.pos)
          throw new KvevictError(
            `${file}: truncated or corrupt: metadata ${shown} claims ${n} elements, and ${size - src.pos} bytes remain`,
          );
        if (arrayType === GgufType.ARRAY) throw new KvevictError(`${file}: metadata ${shown}: nested arrays are not supported`);
        const value: GgufScalar[] = new Array(n);
        for (let j = 0; j < n; j++) value[j] = readScalar(src, arrayType, shown);
        metadata.set(key, { type, arrayType, value });
      } else {
        metadata.set(key, { type, value: readScalar(src, type, shown) });
      }
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = src.str('tensor name');
      const shown = printable(name);
      const nd = src.u32(`dimension count of ${shown}`);
      if (nd > 4) throw new KvevictError(`${file}: tensor ${shown} has ${nd} dimensions`);
      const dims: number[] = [];
      for (let j = 0; j < nd; j++) dims.push(src.u64(`dimension of ${shown}`));
      if (dims.reduce((a, b) => a * b, 1) > size)
        throw new KvevictError(`${file}: tensor ${shown} has dims [${dims}], more values than the file could hold`);
      const type = src.u32(`type of ${shown}`) as GgmlType;
      const offset = src.u64(`offset of ${shown}`);
      tensors.push({ name, dims, type, offset });
    }
    const al = metadata.get('general.alignment');
    const alignment = al ? al.value : DEFAULT_ALIGNMENT;
    if (
      typeof alignment !== 'number' ||
      !Number.isInteger(alignment) ||
      alignment < 1 ||
      (alignment & (alignment - 1)) !== 0 ||
      alignment > 1 << 20
    ) {
      throw new KvevictError(`${file}: general.alignment ${printable(String(alignment))} must be a power of two`);
    }
    const dataOffset = Math.ceil(src.pos / alignment) * alignment;
    const spans: { begin: number; end: number; name: string }[] = [];
    for (const t of tensors) {
      const shown = printable(t.name);
      const bytes = tensorBytes(t, file);
      if (t.offset % alignment !== 0)
        throw new KvevictError(`${file}: tensor ${shown} starts at offset ${t.offset}, not a multiple of the alignment ${alignment}`);
      if (dataOffset + t.offset + bytes > size)
        throw new KvevictError(
          `${file}: truncated: tensor ${shown} ends at byte ${dataOffset + t.offset + bytes} but the file has ${size}`,
        );
      spans.push({ begin: t.offset, end: t.offset + bytes, name: shown });
    }
    spans.sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].begin < spans[i - 1].end)
        throw new KvevictError(`${file}: tensor ${spans[i].name} overlaps tensor ${spans[i - 1].name}`);
    }
    // writers lay tensors out back to back, each padded to the alignment: a gap means a size (type or dims) is wrong
    const pad = (n: number) => Math.ceil(n / alignment) * alignment;
    let expect = 0;
    for (const sp of spans) {
      if (sp.begin !== expect)
        throw new KvevictError(
          `${file}: tensor ${sp.name} starts at data offset ${sp.begin}, where the tensors before it end at ${expect}: a tensor's type or dims do not match its data`,
        );
      expect = pad(sp.end);
    }
    if (spans.length > 0 && size - dataOffset > expect)
      throw new KvevictError(`${file}: ${size - dataOffset - expect} bytes after the last tensor belong to no tensor`);
    const names = new Set<string>();
    for (const t of tensors) {
      if (names.has(t.name)) throw new KvevictError(`${file}: tensor ${printable(t.name)} appears twice`);
      names.add(t.name);
    }
    return { file, version, metadata, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}

export function tensorBytes(t: GgufTensorInfo, file: string): number {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.type === GgmlType.F32) return count * 4;
  if (t.type === GgmlType.F16 || t.type === GgmlType.BF16) return count * 2;
  const f = blockFormat(t.type);
  if (!f) {
    const supported = [0, 1, 30, ...QUANT_TYPES.map((q) => quantFormatOfGgmlType(q))].map(ggmlTypeName).join(', ');
    throw new KvevictError(`${file}: tensor ${printable(t.name)} has ggml type ${ggmlTypeName(t.type)}; supported: ${supported}`);
  }
  if (t.dims.length === 0 || t.dims[0] % f.blockSize !== 0)
    throw new KvevictError(
      `${file}: tensor ${printable(t.name)} is ${ggmlTypeName(t.type)} with rows of ${t.dims[0]} values, not whole blocks of ${f.blockSize}`,
    );
  return (count / f.blockSize) * f.blockBytes;
}

const quantFormatOfGgmlType = (q: QuantType) => quantFormatOfType(q).ggml;

/** One tensor's data as float32 (F32, F16 or BF16). */
export function readGgufTensorF32(g: GgufFile, t: GgufTensorInfo): Float32Array {
  const n = tensorBytes(t, g.file);
  const fd = openSync(g.file, 'r');
  try {
    const buf = Buffer.allocUnsafe(n);
    const got = readSync(fd, buf, 0, n, g.dataOffset + t.offset);
    if (got !== n) throw new KvevictError(`${g.file}: truncated while reading tensor ${t.name}`);
    return decodeToF32(buf, t.type === GgmlType.F32 ? 'F32' : t.type === GgmlType.F16 ? 'F16' : 'BF16');
  } finally {
    closeSync(fd);
  }
}

/** A metadata value, checked. */
export function ggufValue(g: GgufFile, key: string): GgufValue | undefined {
  return g.metadata.get(key)?.value;
}

/** A size from the metadata: a positive integer up to `max` (checked before the model is allocated). */
export function needSize(g: GgufFile, key: string, max: number): number {
  const v = need(g, key);
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new KvevictError(`${g.file}: GGUF metadata ${key} must be an integer in 1..${max}, got ${v}`);
  return v;
}

export function need(g: GgufFile, key: string): number {
  const v = ggufValue(g, key);
  if (typeof v !== 'number') throw new KvevictError(`${g.file}: missing or non-numeric GGUF metadata ${key}`);
  return v;
}
