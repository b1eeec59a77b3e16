import { statSync } from 'node:fs';
import { KvevictError } from '../errors.js';
import { formatHelp, parseArgs, requireString, checkOutputPath } from './args.js';
import type { OptionSpecs } from './args.js';
import { GGUF_DTYPES, writeGguf, type GgufDtype } from '../model/gguf.js';
import { loadModelDir } from '../model/load.js';
import { writeHfFolder } from '../model/hf-export.js';
import { defaultModelDir } from '../paths.js';

export const summary = 'convert a Hugging Face model folder to GGUF (for llama.cpp)';

const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder (config.json, *.safetensors, tokenizer.json)', default: defaultModelDir },
  to: {
    type: 'string',
    help: 'output format: gguf (a file, for llama.cpp) or hf (a Hugging Face folder: safetensors, config.json, tokenizer.json)',
    default: 'gguf',
  },
  out: { type: 'string', help: 'output file (gguf) or folder (hf)' },
  dtype: {
    type: 'string',
    help: `matrix dtype: ${GGUF_DTYPES.join(', ')} (block types with llama.cpp's reference rounding, no importance matrix; q4_k_m: llama.cpp's mix; norms stay f32)`,
    default: 'f32',
  },
  pre: { type: 'string', help: 'tokenizer.ggml.pre override (default: guessed from tokenizer.json)' },
  help: { type: 'boolean', help: 'show this help' },
};

export async function run(argv: string[]): Promise<number> {
  const { options, positionals } = parseArgs(argv, specs, 'convert');
  if (options.help) {
    process.stdout.write(
      formatHelp(
        'kvevict convert --model DIR|FILE.gguf --to gguf --out FILE [--dtype f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m|...]\n       kvevict convert --model FILE.gguf --to hf --out DIR [--dtype f32|f16|bf16]',
        specs,
      ) + '\n',
    );
    return 0;
  }
  if (positionals.length) throw new KvevictError(`convert: unexpected argument "${positionals[0]}"`);
  const to = requireString(options, 'to', 'convert');
  if (to !== 'gguf' && to !== 'hf') throw new KvevictError(`convert: --to must be gguf or hf, got "${to}"`);
  const dtype = requireString(options, 'dtype', 'convert').toLowerCase() as GgufDtype;
  if (to === 'hf') {
    if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16')
      throw new KvevictError(`convert: --to hf takes --dtype f32, f16 or bf16, got "${dtype}"`);
    const outDir = checkOutputPath(requireString(options, 'out', 'convert'), 'folder', 'convert: --out');
    const model = loadModelDir(requireString(options, 'model', 'convert'));
    writeHfFolder(outDir, model.config, model.weights, model.tokenizer, dtype === 'f32' ? 'F32' : dtype === 'f16' ? 'F16' : 'BF16');
    process.stdout.write(
      `wrote ${outDir} (${model.config.modelType}, ${model.config.numLayers} layers, ${dtype} safetensors, config.json, tokenizer.json)\n`,
    );
    return 0;
  }
  if (!GGUF_DTYPES.includes(dtype)) throw new KvevictError(`convert: --dtype must be one of ${GGUF_DTYPES.join(', ')}, got "${dtype}"`);
  const out = checkOutputPath(requireString(options, 'out', 'convert'), 'file', 'convert: --out');
  const dir = requireString(options, 'model', 'convert');
  const pre = typeof options.pre === 'string' ? options.pre : undefined;
  const model = loadModelDir(dir);
  writeGguf(out, model.config, model.weights, model.tokenizer, { dtype, pre });
  const mb = statSync(out).size / 1e6;
  process.stdout.write(`wrote ${out} (${mb.toFixed(1)} MB, ${model.config.modelType}, ${model.config.numLayers} layers, ${dtype})\n`);
  return 0;
}
