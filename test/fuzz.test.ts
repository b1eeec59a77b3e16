import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FUZZ_KINDS, fuzzCampaign } from './helpers/fuzz.js';

// seeded, so a failure reproduces: npm run fuzz -- --kind KIND --seed 11 --cases 300
for (const kind of FUZZ_KINDS) {
  test(`fuzz ${kind}: 300 seeded mutations, each refused in one line or loaded exactly as the original`, () => {
    const r = fuzzCampaign(kind, 300, 11);
    assert.deepEqual(r.failures, [], `${kind}: ${r.failures.length} failures`);
    assert.equal(r.refused + r.identical, 300);
    if (kind !== 'results')
      assert.ok(r.refused > 150, `${kind}: only ${r.refused} of 300 mutations were refused: the mutations do not reach the structure`);
  });
}
