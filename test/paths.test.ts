/** Where the shared data is found: the variable, beside the repository, or beside a local clone's origin. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findSharedData } from '../src/paths.js';

test('shared data: KVEVICT_SHARED_DATA, then ../shared/data beside the repository, then beside a local origin', () => {
  const top = mkdtempSync(join(tmpdir(), 'kvevict-paths-'));
  try {
    // <top>/work/main is the origin, with <top>/work/shared/data beside it; <top>/scratch/clone is a clone of it
    const origin = join(top, 'work', 'main');
    const data = join(top, 'work', 'shared', 'data');
    const clone = join(top, 'scratch', 'clone');
    for (const d of [origin, data, join(clone, '.git')]) mkdirSync(d, { recursive: true });
    const config = (url: string) =>
      `[core]\n\tbare = false\n[remote "upstream"]\n\turl = /elsewhere\n[remote "origin"]\n\turl = ${url}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`;
    writeFileSync(join(clone, '.git', 'config'), config(origin));

    assert.equal(findSharedData(clone, { KVEVICT_SHARED_DATA: '/given' }), '/given');
    assert.equal(findSharedData(origin, {}), data, 'beside the repository');
    assert.equal(findSharedData(clone, {}), join(origin, '..', 'shared', 'data'), 'beside the origin of a local clone');
    writeFileSync(join(clone, '.git', 'config'), config(pathToFileURL(origin).href));
    assert.equal(findSharedData(clone, {}), join(origin, '..', 'shared', 'data'), 'a file:// origin');
    // an origin that is not a local path, or no data beside it: the default place, which error messages name
    writeFileSync(join(clone, '.git', 'config'), config('https://example.org/kvevict.git'));
    assert.equal(findSharedData(clone, {}), join(clone, '..', 'shared', 'data'));
    rmSync(data, { recursive: true });
    writeFileSync(join(clone, '.git', 'config'), config(origin));
    assert.equal(findSharedData(clone, {}), join(clone, '..', 'shared', 'data'));
    rmSync(join(clone, '.git'), { recursive: true });
    assert.equal(findSharedData(clone, {}), join(clone, '..', 'shared', 'data'), 'not a git checkout');
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});
