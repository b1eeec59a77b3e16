import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, isAbsolute, join } from 'node:path';

/** The package root (this file compiles to <root>/<outDir>/src/paths.js). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The folder a local clone came from (its `origin` remote, when that is a path on this machine), else null. */
function localOrigin(root: string): string | null {
  try {
    const config = readFileSync(join(root, '.git', 'config'), 'utf8');
    const section = /\[remote "origin"\]([^[]*)/.exec(config);
    let url = section ? /^\s*url\s*=\s*(.+?)\s*$/m.exec(section[1])?.[1] : undefined;
    if (url?.startsWith('file://')) url = fileURLToPath(url);
    return url !== undefined && isAbsolute(url) ? url : null;
  } catch {
    return null; // not a git checkout, or no readable config
  }
}

/**
 * Read-only shared data: where KVEVICT_SHARED_DATA points, else ../shared/data beside the repository, else
 * ../shared/data beside the repository a local clone was made from (a clone in a scratch folder still finds
 * the data its origin sits beside). Commands that need a file name the path they looked for.
 */
export function findSharedData(root: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.KVEVICT_SHARED_DATA) return env.KVEVICT_SHARED_DATA;
  const beside = join(root, '..', 'shared', 'data');
  if (existsSync(beside)) return beside;
  const origin = localOrigin(root);
  const besideOrigin = origin === null ? null : join(origin, '..', 'shared', 'data');
  return besideOrigin !== null && existsSync(besideOrigin) ? besideOrigin : beside;
}

export const sharedData = findSharedData(repoRoot);
/** The embedded default model used when --model is not given. */
export const defaultModelDir = join(repoRoot, 'models', 'kvevict-ref');
