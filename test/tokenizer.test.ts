import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvevictError } from '../src/errors.js';
import { CHATML_TEMPLATE, Tokenizer, makeByteTokenizerConfig, makeByteTokenizerJson } from '../src/model/tokenizer.js';
import { cutSmolLM2Tokenizer, smolLM2Vocab } from '../src/train/data/vocab.js';
import { Rng } from '../src/util/rng.js';
import { BYTE_SPECIALS, smolDir } from './helpers/random-model.js';

const smol = Tokenizer.fromDir(smolDir, { eosTokenIds: [2] });

const SAMPLES = [
  'The quick brown fox jumps over the lazy dog. It was 1987, and prices rose 12.5% in 3 months!',
  'Ünïcödé: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어, emoji 🎉👩‍💻 and math ∑∫√ ≤ ≥.',
  'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55\r\n',
  '   leading spaces, trailing spaces   \n\n\nmultiple\n\n newlines and\ttabs\t\t ',
  "I'm sure they've said it's 'quoted' (parens) [brackets] {braces} <angle> a+b=c; x->y; x=>y && !z || w",
];

// -------------------------------------------------- an independent byte-level BPE over vocab.json / merges.txt

function gpt2ByteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return out;
}

/** The reference BPE with only the first `maxMerges` merges of merges.txt (all of them by default). */
function referenceEncoder(maxMerges = Infinity): (text: string) => number[] {
  const vocab = JSON.parse(readFileSync(join(smolDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const ranks = new Map<string, number>();
  readFileSync(join(smolDir, 'merges.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#version'))
    .forEach((l, i) => {
      if (i < maxMerges) ranks.set(l, i);
    });
  const chars = gpt2ByteChars();
  const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const bpe = (word: string): string[] => {
    let syms = [...word];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = ranks.get(`${syms[i]} ${syms[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return syms;
      const [a, b] = [syms[best], syms[best + 1]];
      const next: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(syms[i]);
      }
      syms = next;
    }
  };
  return (text: string) => {
    // SmolLM2's pre-tokenizer: every digit is its own piece, then GPT-2's split of each piece
    const pieces = text.split(/(\p{N})/u).filter((p) => p.length > 0);
    const ids: number[] = [];
    for (const piece of pieces) {
      for (const m of piece.matchAll(pattern)) {
        const mapped = [...Buffer.from(m[0], 'utf8')].map((b) => chars[b]).join('');
        for (const s of bpe(mapped)) {
          const id = vocab[s];
          assert.ok(id !== undefined, `reference BPE produced ${s}, not in vocab.json`);
          ids.push(id);
        }
      }
    }
    return ids;
  };
}

test('SmolLM2 cut to its first N ids (the reference model v2 vocabulary): the independent BPE with the first N - 252 merges', () => {
  const essay = readFileSync(join(smolDir, '..', '..', 'haystack', 'PaulGrahamEssays', 'avg.txt'), 'utf8').slice(0, 3000);
  for (const size of [300, 8192]) {
    const json = cutSmolLM2Tokenizer(size);
    const tok = new Tokenizer(json, smolLM2Vocab(size).tokenizerConfig() as Record<string, unknown>);
    assert.equal(tok.vocabSize, size);
    const ref = referenceEncoder(size - 252);
    for (const s of [...SAMPLES, essay, 'The pass key is 58213. 3f2a9c1e-77b4']) {
      const ids = tok.encode(s);
      assert.deepEqual(ids, ref(s), `${size}: ${s.slice(0, 40)}`);
      assert.ok(ids.every((i) => i < size));
      assert.equal(tok.decode(ids), s);
    }
    assert.deepEqual(
      tok.encode('12345'),
      [...'12345'].map((d) => tok.encode(d)[0]),
      'one token per digit',
    );
  }
  assert.throws(() => cutSmolLM2Tokenizer(100), /must be an integer in 253\.\.49152/);
});

test('SmolLM2 tokenizer: ids equal an independent BPE over vocab.json and merges.txt', () => {
  const ref = referenceEncoder();
  assert.deepEqual(smol.encode('Hello world'), ref('Hello world'));
  for (const s of SAMPLES) assert.deepEqual(smol.encode(s), ref(s), s);
  const essay = readFileSync(join(smolDir, '..', '..', 'haystack', 'PaulGrahamEssays', 'addiction.txt'), 'utf8').slice(0, 4000);
  assert.deepEqual(smol.encode(essay), ref(essay));
});

test('SmolLM2 tokenizer: known ids, specials, sizes', () => {
  assert.equal(smol.vocabSize, 49152);
  // "Hello" and " world" are single tokens in vocab.json; digits are split one by one
  const vocab = JSON.parse(readFileSync(join(smolDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.deepEqual(smol.encode('Hello world'), [vocab['Hello'], vocab['Ġworld']]);
  assert.deepEqual(smol.encode('2024'), [vocab['2'], vocab['0'], vocab['2'], vocab['4']]);
  assert.equal(smol.tokenToString(vocab['Ġworld']), 'Ġworld');
  assert.equal(smol.tokenToId('Ġworld'), vocab['Ġworld']);
  assert.equal(smol.bosTokenId, 1);
  assert.equal(smol.eosTokenId, 2);
  assert.equal(smol.padTokenId, 2);
  assert.deepEqual(smol.eosTokenIds, [2]);
  assert.ok(smol.isSpecial(0) && smol.isSpecial(1) && smol.isSpecial(2) && !smol.isSpecial(vocab['Hello']));
  assert.deepEqual(smol.specialTokenIds.slice(0, 3), [0, 1, 2]);
  // no special tokens are added by default; special token text maps to its id
  assert.deepEqual(smol.encode('<|im_start|>user'), [1, vocab['user']]);
  assert.deepEqual(smol.encode(''), []);
  assert.equal(smol.decode([]), '');
  assert.equal(smol.decode([1, vocab['user'], 2], { skipSpecialTokens: true }), 'user');
  assert.throws(() => smol.decode([49152]), KvevictError);
});

test('SmolLM2 tokenizer: round trips English, Unicode and code; token bytes concatenate to the UTF-8 text', () => {
  for (const s of SAMPLES) {
    const ids = smol.encode(s);
    assert.equal(smol.decode(ids), s);
    const bytes = Buffer.concat(ids.map((id) => Buffer.from(smol.tokenBytes(id))));
    assert.deepEqual(bytes, Buffer.from(s, 'utf8'));
  }
  // an emoji split over several tokens: no single token decodes to it, the bytes do
  const ids = smol.encode('🎉');
  assert.ok(ids.length > 1);
  assert.equal(Buffer.concat(ids.map((id) => Buffer.from(smol.tokenBytes(id)))).toString('utf8'), '🎉');
  assert.deepEqual(Buffer.from(smol.tokenBytes(2)).toString('utf8'), '<|im_end|>');
});

test('SmolLM2 chat template renders ChatML exactly, with the default system prompt', () => {
  const messages = [
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' },
    { role: 'user', content: 'And 3+3?' },
  ];
  const expected =
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
    '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
    '<|im_start|>assistant\nIt is 4.<|im_end|>\n' +
    '<|im_start|>user\nAnd 3+3?<|im_end|>\n' +
    '<|im_start|>assistant\n';
  assert.equal(smol.applyChatTemplate(messages, { addGenerationPrompt: true }), expected);
  assert.equal(smol.applyChatTemplate(messages), expected.slice(0, -'<|im_start|>assistant\n'.length));
  const withSystem = smol.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, messages[0]], { addGenerationPrompt: true });
  assert.equal(withSystem, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
  const ids = smol.encodeChat(messages, { addGenerationPrompt: true });
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((i) => i === 1).length, 5);
  assert.equal(smol.decode(ids), expected);
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kvevict-tok-'));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('a tokenizer without a chat template says so; special tokens reach the template', () => {
  const dir = tmp();
  const cfg = makeByteTokenizerConfig(BYTE_SPECIALS) as Record<string, unknown>;
  delete cfg.chat_template;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(makeByteTokenizerJson(BYTE_SPECIALS)));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  const t = Tokenizer.fromDir(dir);
  assert.equal(t.chatTemplate, null);
  assert.throws(
    () => t.applyChatTemplate([{ role: 'user', content: 'hi' }]),
    (e: unknown) =>
      e instanceof KvevictError && e.message.includes('no chat template') && e.message.includes(join(dir, 'tokenizer_config.json')),
  );
  // chat_template.jinja beside it is used; bos_token/eos_token are passed as transformers does
  writeFileSync(
    join(dir, 'chat_template.jinja'),
    '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}',
  );
  const t2 = Tokenizer.fromDir(dir);
  assert.equal(t2.applyChatTemplate([{ role: 'user', content: 'hi' }]), '<|im_start|>[user]hi<|im_end|>');
  // a template that raises becomes a KvevictError
  const t3 = new Tokenizer(makeByteTokenizerJson(BYTE_SPECIALS) as Record<string, unknown>, cfg, {
    chatTemplate: "{{ raise_exception('roles must alternate') }}",
  });
  assert.throws(() => t3.applyChatTemplate([]), /roles must alternate/);
});

test('byte tokenizer: one token per byte, specials after the 256 bytes, exact round trips of arbitrary UTF-8', () => {
  const json = makeByteTokenizerJson(BYTE_SPECIALS) as Record<string, unknown>;
  const t = new Tokenizer(json, makeByteTokenizerConfig(BYTE_SPECIALS) as Record<string, unknown>);
  assert.equal(t.vocabSize, 259);
  assert.equal(t.bosTokenId, 257);
  assert.equal(t.eosTokenId, 258);
  assert.deepEqual(t.eosTokenIds, [258]);
  assert.deepEqual(t.specialTokenIds, [256, 257, 258]);
  const rng = new Rng(99);
  const pools = [
    [0x20, 0x7e],
    [0x0, 0x1f],
    [0xa0, 0x2ff],
    [0x370, 0x3ff],
    [0x3040, 0x30ff],
    [0x4e00, 0x4fff],
    [0x1f300, 0x1f64f],
  ];
  for (let trial = 0; trial < 50; trial++) {
    let s = '';
    const n = 1 + rng.int(60);
    for (let i = 0; i < n; i++) {
      const [lo, hi] = rng.pick(pools);
      s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
    }
    const ids = t.encode(s);
    assert.deepEqual(ids, [...Buffer.from(s, 'utf8')], JSON.stringify(s));
    assert.equal(t.decode(ids), s);
  }
  assert.deepEqual(t.encode('a<|im_end|>b'), [97, 258, 98]);
  assert.equal(t.decode([97, 258, 98], { skipSpecialTokens: true }), 'ab');
  // invalid UTF-8 byte runs decode with replacement characters but token bytes stay exact
  assert.deepEqual([...t.tokenBytes(0xe6)], [0xe6]);
  assert.equal(
    t.applyChatTemplate([{ role: 'user', content: 'hé' }], { addGenerationPrompt: true }),
    '<|im_start|>user\nhé<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(CHATML_TEMPLATE.includes('You are'), false);
  // the JSON is what transformers expects of tokenizer.json: a BPE model with the 256 byte characters
  const model = json.model as { type: string; vocab: Record<string, number>; merges: unknown[] };
  assert.equal(model.type, 'BPE');
  assert.equal(Object.keys(model.vocab).length, 259);
  assert.equal(model.vocab['Ġ'], 32);
  assert.equal(model.vocab['Ċ'], 10);
  assert.equal(model.merges.length, 0);
});

test('a long essay text (over 50K tokens) round trips', () => {
  const essay = readFileSync(join(smolDir, '..', '..', 'haystack', 'PaulGrahamEssays', 'addiction.txt'), 'utf8');
  const text = essay.repeat(Math.ceil(250000 / essay.length));
  const ids = smol.encode(text);
  assert.ok(ids.length > 50000);
  assert.equal(smol.decode(ids), text);
});
