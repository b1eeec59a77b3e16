/**
 * `kvevict serve` through the official `openai` client: chat, streaming, completions, eviction per request,
 * the model list, errors in OpenAI's format with their statuses; compressed contexts reused (the answer is
 * the library's fresh compression's, token for token); batched decoding of concurrent streams, cancellation,
 * a bounded load run; two server processes sharing one real redis-server.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { runWithMode } from '../src/generate/pipeline.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { defaultModelDir, repoRoot } from '../src/paths.js';
import { pressFromSpec, parsePress } from '../src/press/registry.js';
import { Engine, PREFILL_SLICE, QueueFullError, type JobSpec } from '../src/server/engine.js';
import { MemoryLru } from '../src/server/stores.js';
import { Server } from '../src/server/server.js';
import { resolveCompression } from '../src/server/wire.js';
import { withBos } from '../src/eval/prompt.js';
import { greedy } from '../src/generate/sampling.js';
import { cli } from './helpers/cli.js';

const loaded = loadModelDir(defaultModelDir);
const model = new LlamaModel(loaded.config, loaded.weights);
const tok = loaded.tokenizer;

const DOC =
  'Notes from the harbour office. The ferry leaves at noon on weekdays. The secret code of the lighthouse is 48213. ' +
  'Fishing boats return before dusk, and the market opens at six. '.repeat(6);
const docChat = (question: string): OpenAI.Chat.ChatCompletionMessageParam[] => [
  { role: 'user', content: DOC },
  { role: 'assistant', content: 'I have read the notes.' },
  { role: 'user', content: question },
];

describe('kvevict serve with the openai client', () => {
  let server: Server;
  let client: OpenAI;
  let url: string;
  const lines: string[] = [];
  before(async () => {
    server = new Server({
      model,
      tokenizer: tok,
      modelId: 'kvevict-ref',
      port: 0,
      apiKey: 'sekret',
      maxPromptTokens: 2000,
      log: (l) => lines.push(l),
    });
    url = (await server.listen()).url;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sekret', maxRetries: 0 });
  });
  after(() => server.close());

  it('lists the model, answers a chat, and says what the cache kept', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['kvevict-ref'],
    );
    const r = await client.chat.completions.create({
      model: 'kvevict-ref',
      messages: [{ role: 'user', content: 'Hello!' }],
      max_tokens: 12,
      temperature: 0,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    const usage = r.usage as OpenAI.CompletionUsage & { kv_cache: { full_bytes: number; kept_bytes: number; context_reused: boolean } };
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(usage.kv_cache.kept_bytes, usage.kv_cache.full_bytes); // no eviction asked for
    assert.ok(lines.some((l) => l.includes('/v1/chat/completions 200 full')));
  });

  it('streams the same text as the whole answer, then the usage, then [DONE]', async () => {
    const body = { model: 'kvevict-ref', messages: docChat('What is the secret code of the lighthouse?'), max_tokens: 24, temperature: 0 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '',
      finish: string | null = null,
      usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    assert.equal(usage?.completion_tokens, whole.usage?.completion_tokens);
  });

  it('completes text, and stops at a stop string', async () => {
    const r = await client.completions.create({ model: 'kvevict-ref', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    const text = r.choices[0].text;
    assert.ok(text.length > 0);
    const cut = text.slice(2, 4);
    const s = await client.completions.create({
      model: 'kvevict-ref',
      prompt: 'Once upon a time',
      max_tokens: 16,
      temperature: 0,
      stop: [cut],
    });
    assert.equal(s.choices[0].text, text.slice(0, text.indexOf(cut)));
    assert.equal(s.choices[0].finish_reason, 'stop');
  });

  it('evicts per request, reuses a compressed context, and answers as a fresh compression does', async () => {
    const kv = { press: 'snapkv', budget: 48, mode: 'query-agnostic' };
    const ask = (q: string) =>
      client.chat.completions.create({
        model: 'kvevict-ref',
        messages: docChat(q),
        max_tokens: 20,
        temperature: 0,
        // @ts-expect-error kvevict's field
        kv_compression: kv,
      });
    const first = await ask('When does the ferry leave?');
    const second = await ask('What is the secret code of the lighthouse?');
    type Kv = { kv_cache: { full_bytes: number; kept_bytes: number; context_reused: boolean } };
    const u1 = first.usage as unknown as Kv,
      u2 = second.usage as unknown as Kv;
    assert.equal(u1.kv_cache.context_reused, false);
    assert.equal(u2.kv_cache.context_reused, true);
    assert.ok(u2.kv_cache.kept_bytes < u2.kv_cache.full_bytes);
    // the library: the same split (everything before the last user message), a fresh compression
    const messages = docChat('What is the secret code of the lighthouse?') as { role: string; content: string }[];
    const before = tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: false });
    const full = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    const press = pressFromSpec(parsePress('snapkv'), { budget: 48 });
    const fresh = await runWithMode(
      model,
      'query-agnostic',
      withBos(tok, tok.encode(before)),
      tok.encode(full.slice(before.length)),
      press,
      {
        maxNewTokens: 20,
        stopTokens: tok.eosTokenIds,
        sampler: greedy,
      },
    );
    const freshText = tok.decode(
      (fresh.finish === 'stop' ? fresh.tokens.slice(0, -1) : fresh.tokens).filter((id) => id < tok.vocabSize),
      { skipSpecialTokens: true },
    );
    assert.equal(second.choices[0].message.content, freshText);
    // {"press": "full"} turns eviction off
    const off = await client.chat.completions.create({
      model: 'kvevict-ref',
      messages: docChat('When does the ferry leave?'),
      max_tokens: 4,
      // @ts-expect-error kvevict's field
      kv_compression: { press: 'full' },
    });
    const u3 = off.usage as unknown as Kv;
    assert.equal(u3.kv_cache.kept_bytes, u3.kv_cache.full_bytes);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /kvevict_context_store_hits_total\{tier="memory"\} [1-9]/);
    assert.match(metrics, /# TYPE kvevict_requests_total counter/);
  });

  it('refuses a wrong key (401) and bad bodies (400 naming the field), unknown routes (404), long prompts (413)', async () => {
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    const bad = async (body: object, param: RegExp) => {
      const p = client.chat.completions.create({
        model: 'kvevict-ref',
        messages: [{ role: 'user', content: 'hi' }],
        ...body,
      } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
      await assert.rejects(
        p,
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.status === 400 && param.test(String(e.param ?? e.message)),
      );
    };
    await bad({ temperature: 5 }, /temperature/);
    await bad({ messages: [] }, /messages/);
    await bad({ messages: [{ role: 'wizard', content: 'x' }] }, /messages\[0\]\.role/);
    await bad({ kv_compression: { press: 'nosuch', budget: 8 } }, /kv_compression/);
    await bad({ kv_compression: { press: 'snapkv' } }, /kv_compression/);
    await bad({ kv_compression: { press: 'snapkv', budget: 8, options: { window: -3 } } }, /kv_compression/);
    await bad({ max_tokens: -1 }, /max_tokens/);
    const raw = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sekret' },
      body: '{not json',
    });
    assert.equal(raw.status, 400);
    assert.equal(((await raw.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    assert.equal((await fetch(`${url}/v1/nothing`, { headers: { authorization: 'Bearer sekret' } })).status, 404);
    await assert.rejects(
      client.completions.create({ model: 'kvevict-ref', prompt: 'x'.repeat(3000), max_tokens: 1 }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 413,
    );
    assert.equal((await fetch(`${url}/health`)).status, 200);
  });

  it('decodes concurrent streams in one batch; a client that goes away is cancelled', async () => {
    const m0 = server.engine.stats.decodeRows,
      s0 = server.engine.stats.decodeSteps;
    const questions = ['When does the ferry leave?', 'When does the market open?', 'What is the code?', 'Who returns before dusk?'];
    const rs = await Promise.all(
      questions.map((q) =>
        client.chat.completions.create({ model: 'kvevict-ref', messages: [{ role: 'user', content: q }], max_tokens: 24, temperature: 0 }),
      ),
    );
    assert.equal(rs.length, 4);
    const rows = server.engine.stats.decodeRows - m0,
      steps = server.engine.stats.decodeSteps - s0;
    assert.ok(rows / steps > 1.5, `mean batch ${rows / steps}`);
    // alone, each gives the same answer (greedy; the batch changes only float rounding in the products)
    const alone = await client.chat.completions.create({
      model: 'kvevict-ref',
      messages: [{ role: 'user', content: questions[0] }],
      max_tokens: 24,
      temperature: 0,
    });
    assert.equal(alone.choices[0].message.content, rs[0].choices[0].message.content);

    // a model that never says end-of-sequence, so the stream runs until its client goes away
    const endless = new Server({
      model,
      tokenizer: Object.create(tok, { eosTokenIds: { value: [] } }) as typeof tok,
      modelId: 'm',
      port: 0,
      log: (l) => lines.push(l),
    });
    const at = await endless.listen();
    try {
      const abort = new AbortController();
      const c = new OpenAI({ baseURL: `${at.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const stream = await c.chat.completions.create(
        { model: 'm', messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 3000, stream: true },
        { signal: abort.signal },
      );
      let seen = 0;
      let interleaved = -1;
      try {
        for await (const _ of stream) {
          if (++seen !== 2) continue;
          // a long prompt arrives: the running stream keeps decoding between its prefill's slices
          const before = endless.engine.stats.decodeSteps;
          const long = await c.completions.create({ model: 'm', prompt: 'word '.repeat(600), max_tokens: 1, temperature: 0 });
          interleaved = endless.engine.stats.decodeSteps - before;
          assert.equal(long.usage?.prompt_tokens, 3000);
          abort.abort();
        }
      } catch (e) {
        assert.ok(e instanceof OpenAI.APIUserAbortError, String(e)); // the client's own abort, however it surfaces
      }
      for (let i = 0; i < 200 && endless.engine.activeSequences > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(endless.engine.activeSequences, 0);
      assert.ok(endless.engine.stats.decodeSteps < 2500, 'stopped long before max_tokens');
      assert.ok(
        interleaved >= Math.floor(3000 / PREFILL_SLICE),
        `${interleaved} decode steps during a prefill of ${Math.ceil(3000 / PREFILL_SLICE)} slices`,
      );
    } finally {
      await endless.close();
    }
    assert.ok(lines.some((l) => / 499 /.test(l)));
  });

  it('a load run of 8 clients: every request answered or refused with 429, none lost, memory bounded', async () => {
    const small = new Server({ model, tokenizer: tok, modelId: 'kvevict-ref', port: 0, maxQueue: 3 });
    const at = await small.listen();
    try {
      const rss0 = process.memoryUsage().rss;
      const statuses: number[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, c) => {
          for (let i = 0; i < 5; i++) {
            const r = await fetch(`${at.url}/v1/completions`, {
              method: 'POST',
              body: JSON.stringify({
                prompt: `${DOC} Client ${c} asks ${i}:`,
                max_tokens: 8,
                temperature: 0,
                kv_compression: { press: 'streaming', budget: 32 },
              }),
            });
            statuses.push(r.status);
            const body = (await r.json()) as { choices?: unknown[]; error?: { type: string } };
            if (r.status === 200) assert.equal(body.choices?.length, 1);
            else assert.equal(body.error?.type, 'rate_limit_error', JSON.stringify(body));
          }
        }),
      );
      assert.equal(statuses.length, 40);
      assert.ok(
        statuses.every((s) => s === 200 || s === 429),
        String(statuses),
      );
      assert.ok(statuses.filter((s) => s === 200).length >= 8);
      assert.ok(process.memoryUsage().rss - rss0 < 300 * 2 ** 20, 'resident memory grew by less than 300 MiB');
      assert.equal(small.engine.queueDepth, 0);
    } finally {
      await small.close();
    }
  });
});

describe('a folder shared by two servers', () => {
  it('reuses a context compressed by the other server; a damaged file is a miss, not an answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvevict-store-'));
    const defaults = { press: 'snapkv', budget: 48, options: {} };
    const a = new Server({ model, tokenizer: tok, modelId: 'm', port: 0, store: dir, defaults });
    const b = new Server({ model, tokenizer: tok, modelId: 'm', port: 0, store: dir, defaults });
    try {
      const ask = async (s: Server) => {
        const { url } = await s.listen();
        const r = await new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 }).chat.completions.create({
          model: 'm',
          messages: docChat('When does the ferry leave?'),
          max_tokens: 12,
          temperature: 0,
        });
        return {
          text: r.choices[0].message.content,
          reused: (r.usage as unknown as { kv_cache: { context_reused: boolean } }).kv_cache.context_reused,
        };
      };
      const ra = await ask(a);
      const files = readdirSync(dir).filter((f) => f.endsWith('.kvc'));
      assert.equal(files.length, 1);
      const rb = await ask(b);
      assert.deepEqual([ra.reused, rb.reused], [false, true]);
      assert.equal(rb.text, ra.text);
      assert.match(b.metrics(), /kvevict_context_store_hits_total\{tier="disk"\} 1/);
      // a third server finds the file damaged: it compresses again
      const f = join(dir, files[0]);
      writeFileSync(f, readFileSync(f).subarray(0, 1000));
      const c = new Server({ model, tokenizer: tok, modelId: 'm', port: 0, store: dir, defaults });
      try {
        const rc = await ask(c);
        assert.deepEqual([rc.reused, rc.text], [false, ra.text]);
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('kvevict serve on the command line', () => {
  it('refuses bad flags in one line with exit code 2', () => {
    for (const [args, want] of [
      [['--port', '99999'], /--port must be a port number/],
      [['--press', 'nosuch', '--budget', '3'], /unknown press "nosuch"/],
      [['--budget', '3'], /--budget needs --press/],
      [['--mode', 'sideways'], /--mode must be/],
      [['--press', 'snapkv'], /needs a budget or a ratio/],
      [['--store', 'ftp://x'], /neither a folder nor a redis:\/\/ URL/],
    ] as const) {
      const r = cli(['serve', ...args]);
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });
});

describe('kv_compression', () => {
  it("takes a method's trained file from the served model's folder unless the request names one", () => {
    const v2 = join(repoRoot, 'models', 'kvevict-ref-v2');
    const asked = { press: 'judgeq', budget: 12, options: { window: 4 } };
    const own = resolveCompression(asked, { options: {} }, v2).compression!;
    assert.equal(own.options.soft, join(v2, 'judgeq.safetensors'));
    assert.equal(resolveCompression(asked, { options: {} }).compression!.options.soft, undefined);
    const named = { ...asked, options: { window: 4, soft: join(defaultModelDir, 'judgeq.safetensors') } };
    assert.equal(resolveCompression(named, { options: {} }, v2).compression!.options.soft, named.options.soft);
  });
});

describe('the scheduler', () => {
  it('refuses a request when --max-queue requests already wait', () => {
    const engine = new Engine(model, tok, { kvDtype: 'f16', memory: new MemoryLru(1 << 20), shared: null, maxQueue: 1 });
    const spec: JobSpec = {
      contextTokens: withBos(tok, tok.encode(DOC)),
      questionTokens: [],
      mode: 'query-aware',
      compression: null,
      chat: false,
      maxNewTokens: 1,
      sampler: greedy,
      stopStrings: [],
    };
    const done: string[] = [];
    const events = { onFinish: () => done.push('ok'), onError: (e: Error) => done.push(e.message) };
    const c1 = engine.submit(spec, events); // taken for prefill at once
    const c2 = engine.submit(spec, events); // waits
    assert.throws(() => engine.submit(spec, events), QueueFullError);
    c1();
    c2();
  });
});

/** A free loopback port. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function startServe(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'kvevict.js'), 'serve', '--port', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '',
      err = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/[^\s]+)\/v1/.exec(out);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

describe(
  'two servers sharing one redis-server',
  { skip: haveRedis ? false : 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)' },
  () => {
    let redis: ChildProcess;
    let redisPort: number;
    const servers: ChildProcess[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'kvevict-redis-test-'));
    before(async () => {
      redisPort = await freePort();
      redis = spawn(
        'redis-server',
        ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        { stdio: 'ignore' },
      );
      for (let i = 0; i < 100; i++) {
        if (spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG') return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('redis-server did not answer');
    });
    after(() => {
      for (const s of servers) s.kill();
      redis?.kill();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a context compressed by one server is reused by the other, with the same answer', async () => {
      const store = `redis://127.0.0.1:${redisPort}`;
      const a = await startServe(['--store', store, '--press', 'snapkv', '--budget', '48']);
      servers.push(a.proc);
      const b = await startServe(['--store', store, '--press', 'snapkv', '--budget', '48']);
      servers.push(b.proc);
      const ask = async (url: string) =>
        new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 }).chat.completions.create({
          model: 'kvevict-ref',
          messages: docChat('What is the secret code of the lighthouse?'),
          max_tokens: 16,
          temperature: 0,
        });
      const ra = await ask(a.url);
      const rb = await ask(b.url);
      type Kv = { kv_cache: { context_reused: boolean } };
      assert.equal((ra.usage as unknown as Kv).kv_cache.context_reused, false);
      assert.equal((rb.usage as unknown as Kv).kv_cache.context_reused, true);
      assert.equal(rb.choices[0].message.content, ra.choices[0].message.content);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      assert.match(metrics, /kvevict_context_store_hits_total\{tier="redis"\} 1/);
      assert.equal(readdirSync(dir).length, 0, 'redis persisted nothing (the test server runs without saving)');
    });
  },
);
