import { createHash } from 'node:crypto';
import type { ModelConfig } from './config.js';
import type { MatrixData, Weights } from './types.js';
import { Bf16Matrix, QuantMatrix } from '../quant/formats.js';
import { kernels } from '../kernels/index.js';

const hashes = new WeakMap<Weights, string>();

/**
 * A hash of what the model computes: sha256 over the architecture fields of the config (every field but the
 * bos/eos ids and max_position_embeddings, which do not change attention) and every weight as float32, in a
 * fixed order. Computed from the loaded weights, so a folder and its converted copy (GGUF, F32 safetensors)
 * agree when their values agree. Remembered per weights object (the cost is one pass over the weights).
 */
export function modelHash(config: ModelConfig, weights: Weights): string {
  const known = hashes.get(weights);
  if (known !== undefined) return known;
  const h = createHash('sha256');
  const arch: Record<string, unknown> = { ...config };
  delete arch.bosTokenId;
  delete arch.eosTokenIds;
  delete arch.maxPositions;
  const keys = Object.keys(arch).sort();
  h.update(`kvevict-model-1\n${JSON.stringify(keys.map((k) => [k, arch[k]]))}\n`);
  const add = (name: string, a: MatrixData | null): void => {
    if (a instanceof QuantMatrix) {
      // a quantized matrix computes from its blocks (and 8-bit activations): its own bytes identify it
      h.update(`${name}:${a.type}:${a.length}\n`);
      h.update(a.data);
      return;
    }
    h.update(`${name}:${a === null ? -1 : a.length}\n`);
    if (a instanceof Bf16Matrix || a instanceof Uint16Array) {
      // as the float32 values they widen to (a bf16 or f16 folder hashes as when it was loaded as float32), a
      // block at a time
      const f = new Float32Array(Math.min(a.length, 1 << 20));
      for (let i = 0; i < a.length; i += f.length) {
        const n = Math.min(f.length, a.length - i);
        if (a instanceof Uint16Array) kernels().halfToFloat(a.subarray(i, i + n), f, n);
        else kernels().bf16ToFloat(a.bits.subarray(i, i + n), f, n);
        h.update(new Uint8Array(f.buffer, 0, 4 * n));
      }
    } else if (a !== null) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  add('embed', weights.embed);
  weights.layers.forEach((l, i) => {
    add(`${i}.inputNorm`, l.inputNorm);
    add(`${i}.q`, l.q);
    add(`${i}.k`, l.k);
    add(`${i}.v`, l.v);
    add(`${i}.o`, l.o);
    add(`${i}.qBias`, l.qBias);
    add(`${i}.kBias`, l.kBias);
    add(`${i}.vBias`, l.vBias);
    add(`${i}.qNorm`, l.qNorm);
    add(`${i}.kNorm`, l.kNorm);
    add(`${i}.postNorm`, l.postNorm);
    add(`${i}.gate`, l.gate);
    add(`${i}.up`, l.up);
    add(`${i}.down`, l.down);
  });
  add('finalNorm', weights.finalNorm);
  add('lmHead', weights.lmHead === weights.embed ? null : weights.lmHead);
  const hex = h.digest('hex');
  hashes.set(weights, hex);
  return hex;
}
