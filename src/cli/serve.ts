import { basename, resolve } from 'node:path';
import { KvevictError } from '../errors.js';
import { PIPELINE_MODES, type PipelineMode } from '../generate/pipeline.js';
import { LlamaModel, WEIGHT_FORMATS, type WeightFormat } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { defaultModelDir } from '../paths.js';
import { parsePress, pressHelp } from '../press/registry.js';
import { Server } from '../server/server.js';
import { type OptionSpecs, commandOptions } from './args.js';
import { KV_DTYPE_OPTION_SPECS, kvDtypeFromCli } from './kv-dtype.js';

export const summary = 'an OpenAI-compatible server with KV-cache eviction per request and reusable compressed contexts';

const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder or GGUF file', default: defaultModelDir },
  host: { type: 'string', help: 'address to bind (only this machine unless told otherwise)', default: '127.0.0.1' },
  port: { type: 'int', help: 'port (0: any free port, printed at start)', default: 8080 },
  press: { type: 'string', help: 'default eviction method NAME[:key=value...] of requests without kv_compression (default: full cache)' },
  budget: { type: 'int', help: 'default entries kept per KV head per layer' },
  ratio: { type: 'number', help: 'default fraction of the prompt removed, in [0, 1)' },
  mode: {
    type: 'string',
    help: 'default mode: query-agnostic (everything before the last user message is compressed once and reused) or query-aware',
    default: 'query-agnostic',
  },
  store: { type: 'string', help: 'where compressed contexts are shared: a folder, or redis://HOST:PORT (several servers share one)' },
  'cache-bytes': { type: 'int', help: 'bytes of compressed contexts kept in memory (least recently used dropped first)', default: 1 << 30 },
  'max-queue': { type: 'int', help: 'requests that may wait for their prefill; more get 429', default: 64 },
  'max-batch': { type: 'int', help: 'sequences decoded together in one pass over the weights (1: one at a time)', default: 32 },
  'api-key': { type: 'string', help: 'require Authorization: Bearer KEY on /v1/ routes' },
  'max-prompt-tokens': { type: 'int', help: "longest prompt taken (413 beyond; default: the model's positions)" },
  'max-tokens': { type: 'int', help: 'max_tokens of requests that give none', default: 256 },
  ...KV_DTYPE_OPTION_SPECS,
  weights: { type: 'string', help: 'how the linear layers hold their weights: auto, f32, f16 or bf16', default: 'auto' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict serve [--model M] [--host 127.0.0.1] [--port 8080] [--press P --budget B --mode M] [--store DIR | redis://HOST:PORT] [--cache-bytes N] [--max-queue N] [--api-key KEY] [--max-prompt-tokens N]';

export async function run(argv: string[]): Promise<number> {
  const o = commandOptions(argv, specs, 'serve', USAGE, { more: pressHelp() });
  if (!o) return 0;
  const mode = o.mode as string;
  if (!(PIPELINE_MODES as readonly string[]).includes(mode))
    throw new KvevictError(`serve: --mode must be ${PIPELINE_MODES.join(' or ')}, got "${mode}"`);
  const weights = o.weights as string;
  if (!(WEIGHT_FORMATS as readonly string[]).includes(weights))
    throw new KvevictError(`serve: --weights must be one of ${WEIGHT_FORMATS.join(', ')}, got "${weights}"`);
  for (const k of ['port', 'cache-bytes', 'max-queue', 'max-batch', 'max-prompt-tokens', 'max-tokens'] as const) {
    const v = o[k] as number | undefined;
    if (v !== undefined && (!Number.isInteger(v) || v < (k === 'port' || k === 'max-tokens' ? 0 : 1) || (k === 'port' && v > 65535)))
      throw new KvevictError(`serve: --${k} must be ${k === 'port' ? 'a port number' : 'a positive integer'}, got ${v}`);
  }
  if ((o.budget !== undefined || o.ratio !== undefined) && o.press === undefined)
    throw new KvevictError(`serve: --${o.budget !== undefined ? 'budget' : 'ratio'} needs --press`);
  const spec = o.press !== undefined ? parsePress(String(o.press)) : undefined;
  const kvDtype = kvDtypeFromCli(o, 'serve');
  const dir = String(o.model);
  const loaded = loadModelDir(dir);
  const model = new LlamaModel(loaded.config, loaded.weights, undefined, { weights: weights as WeightFormat });
  const server = new Server({
    model,
    tokenizer: loaded.tokenizer,
    modelId: basename(resolve(dir)).replace(/\.gguf$/i, ''),
    modelPath: dir,
    host: String(o.host),
    port: o.port as number,
    defaults: {
      press: spec?.name,
      options: spec?.options ?? {},
      budget: o.budget as number | undefined,
      ratio: o.ratio as number | undefined,
      mode: mode as PipelineMode,
    },
    kvDtype,
    cacheBytes: o['cache-bytes'] as number,
    store: o.store as string | undefined,
    maxQueue: o['max-queue'] as number,
    maxBatch: o['max-batch'] as number,
    apiKey: o['api-key'] as string | undefined,
    maxPromptTokens: o['max-prompt-tokens'] as number | undefined,
    defaultMaxTokens: o['max-tokens'] as number,
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  });
  const at = await server.listen();
  process.stdout.write(`kvevict serve: ${at.url}/v1 (model ${basename(resolve(dir))}; Ctrl-C stops)\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      void server.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
