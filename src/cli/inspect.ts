import { KvevictError } from '../errors.js';
import { prefillAndCompress } from '../generate/pipeline.js';
import { promptText } from '../eval/prompt.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { defaultModelDir } from '../paths.js';
import { pressHelp } from '../press/registry.js';
import { PRESS_OPTION_SPECS, chunkCompressFromCli, pressFromCli } from './press-options.js';
import { KV_DTYPE_OPTION_SPECS, kvDtypeFromCli } from './kv-dtype.js';
import type { KeepPlan } from '../press/types.js';
import { prefillProgress } from './prefill-progress.js';
import { requireString, type OptionSpecs, commandOptions } from './args.js';

export const summary = 'show which prompt tokens a press keeps, per layer and KV head';

const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder (config.json, *.safetensors, tokenizer.json)', default: defaultModelDir },
  prompt: { type: 'string', help: 'text, tokenized as is (no special tokens added)' },
  chat: { type: 'string', help: "one user message, through the model's chat template with the generation prompt" },
  ...PRESS_OPTION_SPECS,
  ...KV_DTYPE_OPTION_SPECS,
  layer: { type: 'int', help: 'layer whose kept tokens are shown in the prompt', default: 0 },
  head: { type: 'int', help: 'KV head whose kept tokens are shown in the prompt', default: 0 },
  json: { type: 'boolean', help: 'print {"promptTokens": [...], "layers": [{"heads": [{"kept": [...]}]}]}' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict inspect [--model DIR] (--prompt TEXT | --chat TEXT) --press NAME[:key=value...] (--budget B | --ratio R) [--kv-dtype f16|f32] [--layer N --head H] [--json]';

/** What `inspect --json` prints. */
export interface InspectJson {
  promptTokens: number[];
  layers: { heads: { kept: number[] }[] }[];
}

export function inspectJson(promptTokens: number[], plan: KeepPlan): InspectJson {
  return { promptTokens, layers: plan.map((layer) => ({ heads: layer.map((kept) => ({ kept: Array.from(kept) })) })) };
}

/** The prompt with the kept tokens of one head marked: [kept] in plain text, reverse video on a terminal. */
export function markKept(tok: Tokenizer, promptTokens: number[], kept: Int32Array, color: boolean): string {
  const keep = new Set(kept);
  const open = color ? '\x1b[7m' : '[';
  const close = color ? '\x1b[27m' : ']';
  let out = '';
  let inside = false;
  for (let i = 0; i < promptTokens.length; i++) {
    const k = keep.has(i);
    if (k && !inside) out += open;
    if (!k && inside) out += close;
    inside = k;
    out += tok.decode([promptTokens[i]]);
  }
  if (inside) out += close;
  return out;
}

function summaryText(
  promptTokens: number[],
  plan: KeepPlan,
  pressName: string,
  layer: number,
  head: number,
  marked: string,
  ms: { prefill: number; select: number },
): string {
  const L = promptTokens.length;
  const lines: string[] = [];
  lines.push(`prompt: ${L} tokens; press ${pressName}; prefill ${ms.prefill.toFixed(0)} ms, selection ${ms.select.toFixed(0)} ms`);
  lines.push('layer  kept share  kept per KV head');
  plan.forEach((heads, l) => {
    const total = heads.reduce((a, k) => a + k.length, 0);
    const share = (100 * total) / (heads.length * L);
    lines.push(`${String(l).padStart(5)}  ${share.toFixed(1).padStart(9)}%  ${heads.map((k) => k.length).join(' ')}`);
  });
  lines.push('');
  lines.push(`layer ${layer}, KV head ${head}: ${plan[layer][head].length} of ${L} tokens kept (marked):`);
  lines.push(marked);
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const options = commandOptions(argv, specs, 'inspect', USAGE, { more: pressHelp(), hint: ' (the text goes after --prompt or --chat)' });
  if (!options) return 0;
  const prompt = options.prompt as string | undefined;
  const chat = options.chat as string | undefined;
  if ((prompt === undefined) === (chat === undefined)) throw new KvevictError('inspect: give exactly one of --prompt or --chat');
  if (options.press === undefined) throw new KvevictError('inspect: --press is required');
  // build the press before loading the model, so option mistakes are reported at once
  const press = pressFromCli(options)!;
  const dir = requireString(options, 'model', 'inspect');
  const loaded = loadModelDir(dir);
  const cfg = loaded.config;
  const layer = options.layer as number;
  const head = options.head as number;
  if (layer < 0 || layer >= cfg.numLayers) throw new KvevictError(`inspect: --layer must be in [0, ${cfg.numLayers - 1}], got ${layer}`);
  if (head < 0 || head >= cfg.numKvHeads)
    throw new KvevictError(`inspect: --head must be in [0, ${cfg.numKvHeads - 1}] (KV heads), got ${head}`);
  const tok = loaded.tokenizer;
  const promptTokens =
    prompt !== undefined ? tok.encode(prompt) : tok.encodeChat([{ role: 'user', content: chat! }], { addGenerationPrompt: true });
  if (promptTokens.length === 0) throw new KvevictError(`inspect: ${prompt !== undefined ? '--prompt' : '--chat'} is empty`);
  if (promptTokens.length >= cfg.maxPositions) {
    throw new KvevictError(
      `inspect: the prompt has ${promptTokens.length} tokens; the model's max_position_embeddings is ${cfg.maxPositions}`,
    );
  }
  const model = new LlamaModel(cfg, loaded.weights);
  const ctx = await prefillAndCompress(model, promptTokens, press, {
    eosTokenIds: tok.eosTokenIds,
    text: promptText(tok, chat !== undefined),
    chunkCompress: chunkCompressFromCli(options),
    progress: prefillProgress(),
    kvDtype: kvDtypeFromCli(options, 'inspect'),
  });
  if (options.json) {
    process.stdout.write(JSON.stringify(inspectJson(promptTokens, ctx.plan)) + '\n');
  } else {
    const marked = markKept(tok, promptTokens, ctx.plan[layer][head], process.stdout.isTTY === true);
    process.stdout.write(
      summaryText(promptTokens, ctx.plan, press.name, layer, head, marked, { prefill: ctx.prefillMs, select: ctx.selectMs }) + '\n',
    );
  }
  return 0;
}
