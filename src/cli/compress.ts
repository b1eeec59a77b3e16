import { existsSync, readFileSync } from 'node:fs';
import { KvevictError } from '../errors.js';
import { saveCompressedContext } from '../generate/context-file.js';
import { prefillAndCompress } from '../generate/pipeline.js';
import { assemblePrompt, promptText } from '../eval/prompt.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { defaultModelDir } from '../paths.js';
import { parsePress, pressHelp } from '../press/registry.js';
import { prefillProgress } from './prefill-progress.js';
import { checkOutputPath, requireString, type OptionSpecs, commandOptions } from './args.js';
import { PRESS_OPTION_SPECS, chunkCompressFromCli, pressFromCli } from './press-options.js';
import { KV_DTYPE_OPTION_SPECS, kvDtypeFromCli } from './kv-dtype.js';

export const summary = 'prefill and compress a long context once, into a .kvc file that generate --context answers on';

const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder or .gguf file', default: defaultModelDir },
  'context-file': { type: 'string', help: 'the context: a UTF-8 text file' },
  chat: { type: 'boolean', help: "the context opens a user turn of the model's chat template (the question closes it)" },
  ...PRESS_OPTION_SPECS,
  ...KV_DTYPE_OPTION_SPECS,
  out: { type: 'string', help: 'compressed context to write (.kvc)' },
  json: { type: 'boolean', help: 'print one JSON object: the file, its size against the full cache, the kept bytes, timings' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict compress [--model DIR] --context-file FILE [--chat] --press NAME[:key=value...] (--budget B | --ratio R) [--kv-dtype f16|f32] --out FILE.kvc [--json]';

export async function run(argv: string[]): Promise<number> {
  const o = commandOptions(argv, specs, 'compress', USAGE, { more: pressHelp() });
  if (!o) return 0;
  const source = requireString(o, 'context-file', 'compress');
  if (!existsSync(source)) throw new KvevictError(`compress: --context-file ${source}: file not found`);
  const out = checkOutputPath(requireString(o, 'out', 'compress'), 'file', 'compress: --out');
  if (!out.endsWith('.kvc')) throw new KvevictError(`compress: --out ${out} must end in .kvc`);
  if (o.press === undefined) throw new KvevictError('compress: --press is required (full keeps everything)');
  const press = pressFromCli(o);
  const kvDtype = kvDtypeFromCli(o, 'compress');
  const text = readFileSync(source, 'utf8');
  if (text.trim() === '') throw new KvevictError(`compress: --context-file ${source} is empty`);
  const dir = requireString(o, 'model', 'compress');
  const loaded = loadModelDir(dir);
  const tok = loaded.tokenizer;
  const chat = o.chat === true;
  if (chat && !tok.chatTemplate)
    throw new KvevictError(`compress: --chat: ${dir} has no chat template (tokenizer_config.json "chat_template")`);
  const model = new LlamaModel(loaded.config, loaded.weights);
  // the context as generate --prompt/--chat ... --question splits it: what comes before the question
  const maxPositions = loaded.config.maxPositions;
  const p = assemblePrompt(tok, { head: text, tail: '', chat, reserve: 0, id: 'compress' }, maxPositions - 1);
  if (p.truncatedTokens > 0 || p.contextTokens.length >= maxPositions)
    throw new KvevictError(
      `compress: the context has ${p.contextTokens.length + p.truncatedTokens} tokens; the model's max_position_embeddings is ${maxPositions}`,
    );
  const tokens = Array.from(p.contextTokens);
  const ctx = await prefillAndCompress(model, tokens, press, {
    eosTokenIds: tok.eosTokenIds,
    text: promptText(tok, chat),
    chunkCompress: chunkCompressFromCli(o),
    progress: prefillProgress(),
    kvDtype,
  });
  const spec = parsePress(String(o.press));
  const budget = o.budget as number | undefined,
    ratio = o.ratio as number | undefined;
  const fileBytes = saveCompressedContext(out, model, ctx, { tokens, press: spec.name, pressOptions: spec.options, budget, ratio, chat });
  const report = {
    file: out,
    fileBytes,
    fullCacheBytes: ctx.fullCacheBytes,
    cacheBytes: ctx.cacheBytes,
    contextTokens: tokens.length,
    kvDtype,
    press: spec.name,
    ...(budget !== undefined ? { budget } : { ratio }),
    peakCacheBytes: ctx.cache.peakBytes,
    prefillMs: ctx.prefillMs,
    selectMs: ctx.selectMs,
  };
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else
    process.stdout.write(
      `${out}: ${tokens.length} context tokens, ${spec.name} kept ${ctx.cacheBytes} of ${ctx.fullCacheBytes} cache bytes; file ${fileBytes} bytes\n`,
    );
  return 0;
}
