import { createRequire } from 'node:module';
import type { Kernels } from './types.js';

/** Wrap the OpenBLAS addon at `path` in the Kernels interface. (Stub until the addon lands.) */
export function makeNativeKernels(path: string): Kernels {
  const require = createRequire(import.meta.url);
  require(path);
  throw new Error('native kernels not implemented yet');
}
