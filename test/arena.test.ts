import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadNative, nativeAddonPath } from '../src/kernels/index.js';
import { jsKernels } from '../src/kernels/js.js';
import { packFloat32, packUint16 } from '../src/kernels/arena.js';
import type { Kernels } from '../src/kernels/types.js';
import { allocateWeights, tensorSlots } from '../src/model/weights.js';
import { smolConfig, tinyConfig } from './helpers/random-model.js';

const native = loadNative();
const skipNative = native ? false : `native addon not built (${nativeAddonPath})`;

/** Counts the buffers a pack used: it records every largeBuffer call and forwards it. */
function counting(k: Kernels): { k: Kernels; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    k: {
      ...k,
      largeBuffer: (bytes: number) => {
        calls.push(bytes);
        return k.largeBuffer(bytes);
      },
    },
  };
}

/** Kilobytes of anonymous memory on transparent huge pages in this process, or null where Linux does not say. */
function anonHugeKb(): number | null {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function thpMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

describe('packed arrays', () => {
  test('each array is zeroed, has its length, starts on 64 bytes, and overlaps no other', () => {
    const counts = [5, 16, 1, 1000, 33, 0, 7];
    for (const arrays of [packFloat32(counts, jsKernels), packUint16(counts, jsKernels)]) {
      assert.deepEqual(
        arrays.map((a) => a.length),
        counts,
      );
      arrays.forEach((a, i) => {
        assert.equal(a.byteOffset % 64, 0);
        assert.ok(a.every((x) => x === 0));
        a.fill(i + 1);
      });
      arrays.forEach((a, i) =>
        assert.ok(
          a.every((x) => x === i + 1),
          `array ${i} was overwritten by another`,
        ),
      );
    }
  });

  test('arrays go on as few buffers as the size limit allows; small packs stay ordinary buffers', () => {
    const c = counting(jsKernels);
    // 4 KB, 4 KB, 8 KB (alone: would pass 12 KB), 2 KB; limit 12 KB, large from 6 KB
    const arrays = packFloat32([1024, 1024, 2048, 512], c.k, { minBytes: 6 << 10, maxBytes: 12 << 10 });
    assert.deepEqual(c.calls, [8 << 10, 10 << 10]);
    assert.equal(arrays[0].buffer, arrays[1].buffer);
    assert.notEqual(arrays[1].buffer, arrays[2].buffer);
    assert.equal(arrays[2].buffer, arrays[3].buffer);
    // an array above the limit gets a buffer of its own
    const big = counting(jsKernels);
    packFloat32([100, 4096, 100], big.k, { minBytes: 1, maxBytes: 1024 });
    assert.deepEqual(big.calls, [448, 16384, 448]);
    const small = counting(jsKernels);
    packFloat32([100, 100], small.k);
    assert.deepEqual(small.calls, []);
  });

  test('allocateWeights gives every tensor of the config its own zeroed view, packed, embed shared when tied', () => {
    for (const cfg of [smolConfig({ num_hidden_layers: 2 }), tinyConfig('qwen2'), tinyConfig('qwen3', { tie_word_embeddings: false })]) {
      const w = allocateWeights(cfg, jsKernels);
      const views = tensorSlots(cfg).map((s) => {
        const a = s.get(w);
        assert.ok(a, s.name);
        assert.equal(
          a.length,
          s.shape.reduce((x, y) => x * y, 1),
          s.name,
        );
        return a;
      });
      assert.equal(w.lmHead === w.embed, cfg.tieWordEmbeddings);
      views.forEach((a, i) => (a as Float32Array).fill(i + 1));
      views.forEach((a, i) => assert.ok((a as Float32Array).every((x) => x === i + 1)));
      assert.equal(w.layers[0].q.buffer, w.layers[0].down.buffer);
    }
  });
});

describe('native largeBuffer', { skip: skipNative }, () => {
  const k = native as Kernels;

  test('is zeroed, writable and exactly the size asked; bad sizes throw', () => {
    for (const bytes of [0, 1, 4096, (2 << 20) + 12]) {
      const b = k.largeBuffer(bytes);
      assert.equal(b.byteLength, bytes);
      const u = new Uint8Array(b);
      assert.ok(u.every((x) => x === 0));
      u.fill(7);
      assert.ok(u.every((x) => x === 7));
    }
    assert.throws(() => k.largeBuffer(-1), /largeBuffer: bytes must be >= 0/);
    assert.throws(() => k.largeBuffer(1.5), /largeBuffer: bytes must be an integer/);
  });

  test(
    'lies on transparent huge pages where Linux offers them',
    { skip: thpMode() === 'never' || thpMode() === null || anonHugeKb() === null ? 'no transparent huge pages here' : false },
    () => {
      const before = anonHugeKb() ?? 0;
      const b = new Float32Array(k.largeBuffer(16 << 20));
      b.fill(1);
      const after = anonHugeKb() ?? 0;
      // the 16 MB mapping is 2 MB-aligned: all of it can be huge pages; ask for half, as memory may be fragmented
      assert.ok(after - before >= 8 << 10, `AnonHugePages grew by ${after - before} kB`);
      assert.equal(b[b.length - 1], 1);
    },
  );
});
