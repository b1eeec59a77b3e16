import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The package root (this file compiles to <root>/<outDir>/src/paths.js). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Read-only shared data: beside the repository (../shared/data), or where KVEVICT_SHARED_DATA points. */
export const sharedData = process.env.KVEVICT_SHARED_DATA || join(repoRoot, '..', 'shared', 'data');
/** The embedded default model used when --model is not given. */
export const defaultModelDir = join(repoRoot, 'models', 'kvevict-ref');
