/** The layering of docs/architecture.md holds: each folder imports only from the folders below it, and no file imports itself in a cycle. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../src/paths.js';

/** Bottom up, as docs/architecture.md lists them; a file at the root of src/ is its own layer. */
const LAYERS = [
  'util',
  'errors',
  'paths',
  'quant',
  'kernels',
  'autograd',
  'cache',
  'model',
  'press',
  'generate',
  'eval',
  'train',
  'server',
  'cli',
  'index',
];

function sources(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const src = join(repoRoot, 'src');
const layerOf = (file: string): string => relative(src, file).split('/')[0].replace(/\.ts$/, '');
const imports = new Map<string, string[]>();
for (const f of sources(src)) {
  const text = readFileSync(f, 'utf8');
  imports.set(
    f,
    [...text.matchAll(/from '(\.[^']+)'/g)].map((m) => resolve(dirname(f), m[1]).replace(/\.js$/, '.ts')),
  );
}

test('every folder of src/ imports only from the layers below it', () => {
  const wrong: string[] = [];
  for (const [file, targets] of imports) {
    const a = LAYERS.indexOf(layerOf(file));
    assert.ok(a >= 0, `${relative(src, file)}: a layer docs/architecture.md does not list`);
    for (const t of targets) {
      const b = LAYERS.indexOf(layerOf(t));
      if (b > a) wrong.push(`${relative(src, file)} -> ${relative(src, t)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles between files', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((x) => relative(src, x)).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const t of imports.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of imports.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});
