import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../src/model/load.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';

/** A byte-level tiny Llama folder (2 layers) to break in many ways. */
function fixture(): {
  dir: string;
  file: string;
  header: Record<string, unknown>;
  hl: number;
  bytes: Buffer;
  raw: Record<string, unknown>;
} {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-files-'));
  const raw = tinyRawConfig('llama', { vocab_size: 259 });
  writeRandomModelDir(dir, raw, { tokenizerFrom: 'bytes' });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const hl = Number(bytes.readBigUInt64LE(0));
  return { dir, file, header: JSON.parse(bytes.subarray(8, 8 + hl).toString('utf8')), hl, bytes, raw };
}

function withHeader(f: ReturnType<typeof fixture>, edit: (h: Record<string, unknown>) => void, lengthDelta = 0): Buffer {
  const h = structuredClone(f.header);
  edit(h);
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length + lengthDelta));
  return Buffer.concat([len, hb, f.bytes.subarray(8 + f.hl)]);
}

/** The load fails with one short line that names the file and matches `why`. */
function refused(dir: string, why: RegExp, what: string): void {
  assert.throws(
    () => loadModelDir(dir),
    (e: Error) => {
      assert.equal(e.name, 'KvevictError', `${what}: ${e.stack}`);
      assert.match(e.message, why, what);
      assert.ok(!e.message.includes('\n') && e.message.length < 400, `${what}: one short line (${e.message.length} characters)`);
      assert.ok(e.message.includes(dir), `${what}: names the file`);
      return true;
    },
    what,
  );
}

test('safetensors headers: every malformed entry is refused in one line naming the file and tensor', () => {
  const f = fixture();
  try {
    const first = Object.keys(f.header).find((k) => k !== '__metadata__')!;
    const entry = (h: Record<string, unknown>) => h[first] as Record<string, unknown>;
    const offsets = entry(f.header).data_offsets as number[];
    const cases: [string, Buffer, RegExp][] = [
      [
        'an entry that is null',
        withHeader(f, (h) => {
          h[first] = null;
        }),
        /not an object/,
      ],
      [
        'a shape that is a string',
        withHeader(f, (h) => {
          entry(h).shape = '4,4';
        }),
        /shape must be a list/,
      ],
      [
        'data_offsets missing',
        withHeader(f, (h) => {
          delete entry(h).data_offsets;
        }),
        /data_offsets must be two/,
      ],
      [
        'fractional data_offsets',
        withHeader(f, (h) => {
          entry(h).data_offsets = [offsets[0] + 0.5, offsets[1] + 0.5];
        }),
        /data_offsets must be two non-negative integers/,
      ],
      [
        'negative data_offsets',
        withHeader(f, (h) => {
          entry(h).data_offsets = [-4, offsets[1] - offsets[0] - 4];
        }),
        /data_offsets/,
      ],
      [
        'overlapping tensors',
        withHeader(f, (h) => {
          const names = Object.keys(h).filter((k) => k !== '__metadata__');
          const a = h[names[0]] as { data_offsets: number[] },
            b = h[names[1]] as { data_offsets: number[] };
          const len = b.data_offsets[1] - b.data_offsets[0];
          b.data_offsets = [a.data_offsets[0], a.data_offsets[0] + len];
        }),
        /overlaps|belong to no tensor|bytes for shape/,
      ],
      ['a header length one byte short', withHeader(f, () => {}, -1), /not valid JSON|belong to no tensor/],
      ['a header length past the file', withHeader(f, () => {}, 1 << 30), /runs past the end/],
      ['a header that is an array', Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('[]')]), /not a JSON object/],
      [
        'an unknown dtype with a binary name',
        withHeader(f, (h) => {
          entry(h).dtype = 'I8\u0000\u0001' + 'x'.repeat(5000);
        }),
        /unsupported dtype I8\\u0000\\u0001x+\.\.\. \(5004 characters\)/,
      ],
    ];
    for (const [what, bytes, why] of cases) {
      writeFileSync(f.file, bytes);
      refused(f.dir, why, what);
    }
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('non-finite weights are refused with the tensor named', () => {
  const f = fixture();
  try {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const b = Buffer.from(f.bytes);
      b.writeFloatLE(bad, b.length - 8);
      writeFileSync(f.file, b);
      refused(f.dir, /tensor \S+ holds (NaN|-?Infinity) at index \d+: weights must be finite/, String(bad));
    }
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('config.json: sizes, counts, eps, theta and the activation are checked before anything is allocated', () => {
  const f = fixture();
  try {
    const cfgFile = join(f.dir, 'config.json');
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['a negative hidden size', { hidden_size: -64 }, /"hidden_size" must be an integer in 1\.\./],
      ['vocab_size 2^31', { vocab_size: 2 ** 31 }, /"vocab_size" must be an integer in 1\.\./],
      ['num_hidden_layers 1e9', { num_hidden_layers: 1e9 }, /"num_hidden_layers" must be an integer in 1\.\./],
      ['num_hidden_layers 1 on a 2-layer file', { num_hidden_layers: 1 }, /num_hidden_layers is 1 but the weights hold 2 layers/],
      ['rope_theta 0', { rope_theta: 0 }, /"rope_theta" must be greater than 1/],
      ['rms_norm_eps -1', { rms_norm_eps: -1 }, /"rms_norm_eps" must be in \(0, 1\)/],
      ['hidden_act gelu', { hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
      ['fractional heads', { num_attention_heads: 2.5 }, /"num_attention_heads" must be an integer/],
    ];
    for (const [what, edit, why] of cases) {
      writeFileSync(cfgFile, JSON.stringify({ ...f.raw, ...edit }));
      refused(f.dir, why, what);
    }
    writeFileSync(cfgFile, JSON.stringify(f.raw));
    assert.equal(loadModelDir(f.dir).config.numLayers, 2, 'the untouched folder still loads');
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('GGUF files: alignments, offsets, counts and names are checked before anything is allocated', async () => {
  const { ggufContent, writeGgufFile, GgufType } = await import('../src/model/gguf.js');
  const f = fixture();
  try {
    const m = loadModelDir(f.dir);
    const file = join(f.dir, 'm.gguf');
    const write = (edit: (md: Map<string, { type: number; value: unknown }>, tensors: { name: string }[]) => void) => {
      const { metadata, tensors } = ggufContent(m.config, m.weights, m.tokenizer);
      edit(metadata as unknown as Map<string, { type: number; value: unknown }>, tensors);
      writeGgufFile(file, metadata, tensors);
    };
    const u32 = (value: number) => ({ type: GgufType.UINT32, value });
    const cases: [string, Parameters<typeof write>[0], RegExp][] = [
      ...[0, 3, 33].map((a): [string, Parameters<typeof write>[0], RegExp] => [
        `alignment ${a}`,
        (md) => {
          md.set('general.alignment', u32(a));
        },
        new RegExp(`general\\.alignment ${a} must be a power of two`),
      ]),
      [
        'alignment 1 on a file laid out for 32',
        (md) => {
          md.set('general.alignment', u32(1));
        },
        /belong to no tensor|does not match|not a multiple/,
      ],
      [
        'tensors not on the alignment',
        (md) => {
          md.set('general.alignment', u32(4096));
        },
        /not a multiple of the alignment 4096|truncated/,
      ],
      [
        'block_count 4294967295',
        (md) => {
          md.set('llama.block_count', u32(4294967295));
        },
        /llama\.block_count must be an integer in 1\.\.1024/,
      ],
      [
        'head_count 0',
        (md) => {
          md.set('llama.attention.head_count', u32(0));
        },
        /llama\.attention\.head_count must be an integer in 1\.\./,
      ],
      [
        'head_count_kv 3 of 4',
        (md) => {
          md.set('llama.attention.head_count_kv', u32(3));
        },
        /head_count_kv 3 must divide head_count 4/,
      ],
      [
        'no tokenizer.ggml.tokens',
        (md) => {
          md.delete('tokenizer.ggml.tokens');
        },
        /tokenizer\.ggml\.tokens is missing/,
      ],
      [
        'a tensor name of 5.5 MB of binary',
        (_md, ts) => {
          (ts as unknown[]).push({ name: '\u0001\u0002'.repeat(2_750_000), shape: [32], data: new Float32Array(32), type: 11 });
        },
        /\\u0001\\u0002.*\.\.\. \(5500000 characters\) has ggml type Q3_K \(11\); supported: F32 \(0\), F16 \(1\), BF16 \(30\), Q4_0 \(2\)/,
      ],
      [
        'a tensor twice',
        (_md, ts) => {
          ts[1].name = ts[0].name;
        },
        /appears twice/,
      ],
      [
        'a token_type table of the wrong length',
        (md) => {
          (md.get('tokenizer.ggml.token_type')!.value as number[]).pop();
        },
        /token_type has 258 entries for 259 tokens/,
      ],
      [
        'a merge that does not fit the vocabulary',
        (md) => {
          md.set('tokenizer.ggml.merges', { type: GgufType.ARRAY, arrayType: GgufType.STRING, value: ['a b', 'zz yy'] } as never);
        },
        /merges entry \d+ \(.*\) does not fit the vocabulary/,
      ],
    ];
    for (const [what, edit, why] of cases) {
      write(edit);
      refused(file, why, what);
    }
    // an unknown value type, patched into the bytes of a good file: the file is named
    write(() => {});
    const bytes = readFileSync(file);
    const at = bytes.indexOf(Buffer.from('general.architecture')) + 'general.architecture'.length;
    bytes.writeUInt32LE(99, at);
    writeFileSync(file, bytes);
    refused(file, /unknown GGUF value type 99 in type of general\.architecture|unknown GGUF value type 99/, 'unknown value type');
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});
