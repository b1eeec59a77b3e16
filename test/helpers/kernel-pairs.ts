import { jsKernels } from '../../src/kernels/js.js';
import { kernels } from '../../src/kernels/index.js';
import type { Kernels } from '../../src/kernels/types.js';

/** The TypeScript kernels, and the native ones where the addon is built: a test runs its checks on each. */
export function kernelPairs(): [string, Kernels][] {
  const native = kernels();
  return native.name === 'native'
    ? [
        ['js', jsKernels],
        ['native', native],
      ]
    : [['js', jsKernels]];
}
