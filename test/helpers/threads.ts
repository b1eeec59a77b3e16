import { nativeAddonPath } from '../../src/kernels/index.js';
import { loadNativeAddon } from '../../src/kernels/native.js';

/** Runs `fn` with the native addon's kernels (OpenBLAS and the pool) on `threads` threads, then restores the count. */
export function withThreads<T>(threads: number, fn: () => T): T {
  const addon = loadNativeAddon(nativeAddonPath);
  const before = addon.info().threads;
  addon.setThreads(threads);
  try {
    return fn();
  } finally {
    addon.setThreads(before);
  }
}
