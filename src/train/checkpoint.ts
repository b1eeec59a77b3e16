import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
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
 * float32. Written to a temporary file and renamed, so a crash never leaves a torn checkpoint.
 */
export function saveCheckpoint(file: string, params: Tensor[], opt: AdamW, meta: CheckpointMeta): void {
  mkdirSync(dirname(file), { recursive: true });
  const header = Buffer.from(JSON.stringify({ ...meta, adamT: opt.t, sizes: params.map((p) => p.size), names: params.map((p) => p.name) }), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const blobs: Buffer[] = [len, header];
  for (const arrays of [params.map((p) => p.data), opt.m, opt.v]) {
    for (const a of arrays) blobs.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, Buffer.concat(blobs));
  renameSync(tmp, file);
}

/** Restore parameters and optimizer state in place; returns the metadata. */
export function loadCheckpoint(file: string, params: Tensor[], opt: AdamW): CheckpointMeta {
  if (!existsSync(file)) throw new KvevictError(`${file}: no checkpoint to resume from`);
  const buf = readFileSync(file);
  const hl = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + hl).toString('utf8')) as CheckpointMeta & { adamT: number; sizes: number[] };
  if (header.sizes.length !== params.length || header.sizes.some((s, i) => s !== params[i].size)) {
    throw new KvevictError(`${file}: checkpoint tensors do not match the model configuration`);
  }
  let off = 8 + hl;
  const copy = (dst: Float32Array) => {
    const bytes = buf.subarray(off, off + dst.byteLength);
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(bytes);
    off += dst.byteLength;
  };
  params.forEach((p) => copy(p.data));
  opt.m.forEach(copy);
  opt.v.forEach(copy);
  opt.t = header.adamT;
  return { step: header.step, options: header.options, tokensSeen: header.tokensSeen, elapsedSeconds: header.elapsedSeconds, history: header.history };
}
