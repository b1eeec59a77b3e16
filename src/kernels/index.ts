import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';
import { KvevictError } from '../errors.js';
import { jsKernels } from './js.js';
import { makeNativeKernels } from './native.js';
import type { Kernels } from './types.js';

export type { Kernels, InferenceKernels, ScoringKernels, TrainingKernels, AttendArgs, GemvPart, PackedPart } from './types.js';
export { jsKernels } from './js.js';
export { PACK_STRIP, packedWeightFloats } from './types.js';

export const nativeAddonPath = join(repoRoot, 'build', 'Release', 'kvevict_native.node');

let nativeCache: Kernels | null | undefined;

/** True when the CPU reports AVX-512 (Linux only; elsewhere we leave OpenBLAS alone). */
function hasAvx512(): boolean {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    return /\bavx512f\b/.test(info);
  } catch {
    return false;
  }
}

/** Load the OpenBLAS addon, or return null when it was not built. */
export function loadNative(): Kernels | null {
  if (nativeCache !== undefined) return nativeCache;
  if (!existsSync(nativeAddonPath)) return (nativeCache = null);
  // Debian's OpenBLAS 0.3.21 does not know Zen 5 and would pick AVX2 kernels at half speed.
  if (process.env.OPENBLAS_CORETYPE === undefined && hasAvx512()) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
  // After each call OpenBLAS's workers spin for 2^28 cycles (about 0.1 s) before they sleep, taking a core from
  // the attention and sgemv that follow on this project's own pool (measured: attention 15-25% slower right
  // after an sgemm, the 8K prefill 9% slower). 2^4 cycles makes them sleep at once; waking costs microseconds.
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = '4';
  if (process.env.OPENBLAS_NUM_THREADS === undefined) process.env.OPENBLAS_NUM_THREADS = String(Math.max(1, cpus().length));
  nativeCache = makeNativeKernels(nativeAddonPath);
  return nativeCache;
}

let chosen: Kernels | undefined;
let warned = false;

/** The kernels for this process: native when built, else js with one warning. KVEVICT_BACKEND=js|native forces one. */
export function kernels(): Kernels {
  if (chosen) return chosen;
  const want = process.env.KVEVICT_BACKEND;
  if (want !== undefined && want !== 'js' && want !== 'native') {
    throw new KvevictError(`KVEVICT_BACKEND must be "js" or "native", got "${want}"`);
  }
  if (want === 'js') return (chosen = jsKernels);
  const native = loadNative();
  if (native) return (chosen = native);
  if (want === 'native')
    throw new KvevictError(
      `KVEVICT_BACKEND=native but the addon ${nativeAddonPath} was not built (install libopenblas-pthread-dev, then npm rebuild)`,
    );
  if (!warned) {
    warned = true;
    process.stderr.write(
      'kvevict: native OpenBLAS kernels not built; using the slow TypeScript kernels (apt-get install libopenblas-pthread-dev && npm rebuild)\n',
    );
  }
  return (chosen = jsKernels);
}
