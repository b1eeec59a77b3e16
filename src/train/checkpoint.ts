import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { KvevictError } from '../errors.js';
import type { Tensor } from '../autograd/tensor.js';
import type { AdamW } from './adamw.js';

/** What a checkpoint stores besides the arrays. */
export interface CheckpointMeta {
  step: number;
  /** the options the run started with: a resumed run must agree */
  options: Record<string, unknown>;
  tokensSeen: number;
  elapsedSeconds: number;
  /** loss/eval history for the loss curve */
  history: unknown[];
}

/**
 * One file: 8-byte header length, JSON header, then every parameter, Adam first and second moment as
 * float32. The header records the payload's size and SHA-256, so a truncated or corrupted file is refused
 * instead of resuming from half-restored weights. Written to a temporary file, synced and renamed, so a
 * crash never leaves a torn checkpoint in place.
 */
export function saveCheckpoint(file: string, params: Tensor[], opt: AdamW, meta: CheckpointMeta): void {
  mkdirSync(dirname(file), { recursive: true });
  const blobs: Buffer[] = [];
  for (const arrays of [params.map((p) => p.data), opt.m, opt.v]) {
    for (const a of arrays) blobs.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  let payloadBytes = 0;
  for (const b of blobs) payloadBytes += b.length;
  const fields = { ...meta, format: 3, adamT: opt.t, sizes: params.map((p) => p.size), names: params.map((p) => p.name), payloadBytes };
  // the digest covers the header's other fields as well as the tensors: an edited step is refused like a flipped weight
  const hash = createHash('sha256').update(JSON.stringify(fields));
  for (const b of blobs) hash.update(b);
  const header = Buffer.from(JSON.stringify({ ...fields, sha256: hash.digest('hex') }), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const b of [len, header, ...blobs]) for (let o = 0; o < b.length;) o += writeSync(fd, b, o);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true }); // a failed write (a full disk) leaves nothing behind, and the old checkpoint stands
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** A whole number >= 0 (a step, a count) as a JSON header holds it. */
export function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/**
 * Restore parameters and optimizer state in place; returns the metadata. Refuses, in one line, any file that
 * is not whole. `checkOptions` sees the run's recorded options before the tensors are compared, so a run
 * resumed with other options is told which one differs rather than that the shapes do.
 */
export function loadCheckpoint(
  file: string,
  params: Tensor[],
  opt: AdamW,
  checkOptions?: (options: Record<string, unknown>) => void,
): CheckpointMeta {
  if (!existsSync(file)) throw new KvevictError(`${file}: no checkpoint to resume from`);
  const buf = readFileSync(file);
  const bad = (why: string) => new KvevictError(`${file}: not a usable checkpoint (${why}); restore it or start the run again`);
  if (buf.length < 8) throw bad(`${buf.length} bytes`);
  const hl = Number(buf.readBigUInt64LE(0));
  if (hl <= 0 || 8 + hl > buf.length) throw bad(`header length ${hl} past the end of the ${buf.length}-byte file`);
  let header: CheckpointMeta & { adamT: number; sizes: number[]; payloadBytes?: number; sha256?: string };
  try {
    header = JSON.parse(buf.subarray(8, 8 + hl).toString('utf8'));
  } catch {
    throw bad('the header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null) throw bad('the header is not an object');
  if (!isCount(header.step)) throw bad(`step ${JSON.stringify(header.step)} is not a whole number`);
  if (!isCount(header.adamT)) throw bad(`adamT ${JSON.stringify(header.adamT)} is not a whole number`);
  if (!Array.isArray(header.sizes) || !header.sizes.every(isCount)) throw bad('the tensor sizes are missing');
  if (!Array.isArray(header.history)) throw bad('the history is missing');
  checkOptions?.((header.options ?? {}) as Record<string, unknown>);
  if (header.sizes.length !== params.length || header.sizes.some((s, i) => s !== params[i].size)) {
    throw new KvevictError(`${file}: checkpoint tensors do not match the model configuration`);
  }
  const want = 3 * 4 * header.sizes.reduce((a, b) => a + b, 0);
  const payload = buf.subarray(8 + hl);
  if (payload.length !== want)
    throw bad(`${payload.length} bytes of tensors where the header needs ${want}: the file is truncated or padded`);
  if (typeof header.tokensSeen !== 'number' || typeof header.elapsedSeconds !== 'number')
    throw bad('tokensSeen or elapsedSeconds is missing');
  // files written since checkpoints carry a digest (format 2) must have it; older ones are taken as they are
  const legacy = !('format' in header) && !('payloadBytes' in header);
  if (!legacy && typeof header.sha256 !== 'string') throw bad('the checksum is missing from the header');
  if (header.sha256 !== undefined) {
    const { sha256, ...fields } = header;
    // format 3 digests the header's fields and the tensors; format 2 (written for a while before it) the tensors alone
    const h = createHash('sha256');
    if ((header as { format?: unknown }).format !== 2) h.update(JSON.stringify(fields));
    if (h.update(payload).digest('hex') !== sha256) throw bad('the header or the tensors do not match the checksum');
  }
  let off = 0;
  const copy = (dst: Float32Array) => {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(payload.subarray(off, off + dst.byteLength));
    off += dst.byteLength;
  };
  params.forEach((p) => copy(p.data));
  opt.m.forEach(copy);
  opt.v.forEach(copy);
  opt.t = header.adamT;
  return {
    step: header.step,
    options: header.options ?? {},
    tokensSeen: header.tokensSeen,
    elapsedSeconds: header.elapsedSeconds,
    history: header.history,
  };
}
