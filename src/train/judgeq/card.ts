/**
 * The card of a delivered soft-token file (JUDGEQ.md beside it) or LookaheadKV file (LOOKAHEADKV.md): how
 * the rows were trained, their loss curves, the oracle hit rate and attention recall of the method and the
 * baselines on held-out prompts, and needle / RULER accuracy in both modes through the evaluation grid.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from '../../paths.js';
import { KvevictError } from '../../errors.js';
import { loadEngine, runEvalJob } from '../../eval/setup.js';
import { MODES, makeGrid, parsePress } from '../../eval/settings.js';
import { formatMarkdownPivot, withoutFileOptions } from '../../eval/summary.js';
import type { TextSink } from '../../eval/progress.js';
import { LlamaModel } from '../../model/llama.js';
import { loadModelDir } from '../../model/load.js';
import { DEFAULT_SOFT_FILE } from '../../press/methods/judgeq.js';
import { DEFAULT_LOOKAHEAD_FILE } from '../../press/methods/lookaheadkv.js';
import { loadLookaheadModules } from '../../press/queries/lookahead-adapter-file.js';
import { modelFileFor, withModelFiles } from '../../press/registry.js';
import { loadSoftTokens, modelHash } from '../../press/queries/soft-tokens-file.js';
import { formatDuration } from '../progress.js';
import { heldOutFidelity, type FidelityCell, type MethodSpec } from './hit-rate.js';
import type { JudgeqExample } from './objective.js';
import { buildPrompts } from './prompts.js';
import { ResponseCache } from './responses.js';
import { LOSS_UNIT, toolOf, type JudgeqRecipe, type LookaheadkvRecipe, type TrainRecord, type TrainedKind } from './train.js';

export interface CardOptions {
  /** default 'judgeq' */
  kind?: TrainedKind;
  modelDir: string;
  softFile: string;
  /** the training run folder: log.jsonl, loss.svg, the response cache */
  runDir: string;
  /** held-out prompts for the hit rates (the training's held-out set is their first part) */
  heldOut: number;
  budgets: number[];
  /** needle and RULER through the evaluation grid (slow); false leaves that section out */
  benchmarks: boolean;
  /** RULER cases per task */
  rulerSamples: number;
  needleLengths: number[];
  progress: TextSink;
  /** evaluate as the embedded reference model (held-out haystacks); default: when modelDir is its folder */
  embedded?: boolean;
}

export const CARD_RULER_TASKS = ['ruler:niah_single_2', 'ruler:niah_multikey_1', 'ruler:niah_multivalue', 'ruler:vt', 'ruler:fwe'];

/** Trainable values of a LookaheadKV file: embeddings and every LoRA matrix. */
function paramCount(m: ReturnType<typeof loadLookaheadModules>): number {
  return m.embeddings.length + m.lora.reduce((a, layer) => a + Object.values(layer).reduce((b, p) => b + p.a.length + p.b.length, 0), 0);
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function fidelityTable(cells: FidelityCell[], budgets: number[], what: 'hitRate' | 'recall'): string {
  const labels = [...new Set(cells.map((c) => c.label))];
  const lines = [`| method | ${budgets.map((b) => `B=${b}`).join(' | ')} |`, `|---|${budgets.map(() => '---:').join('|')}|`];
  for (const l of labels)
    lines.push(`| ${l} | ${budgets.map((b) => fmt(cells.find((c) => c.label === l && c.budget === b)?.[what] ?? NaN)).join(' | ')} |`);
  const ns = budgets.map((b) => cells.find((c) => c.budget === b)?.n ?? 0);
  lines.push(`| prompts longer than B | ${ns.join(' | ')} |`);
  return lines.join('\n');
}

/** What the starting rows were, from their own metadata when the file is still there. */
function initNote(file: string, kind: TrainedKind): string {
  if (!existsSync(file)) return '';
  const m = (kind === 'lookaheadkv' ? loadLookaheadModules(file) : loadSoftTokens(file)).metadata;
  const r = JSON.parse(m.recipe ?? '{}') as Partial<JudgeqRecipe>;
  return ` (themselves trained for ${m.steps ?? '?'} steps of ${r.batch ?? '?'} prompts, ${formatDuration(Number(m.training_seconds))}, on an earlier checkpoint of the model, model_hash ${String(m.model_hash).slice(0, 12)}..., with the same data recipe and learning rate ${r.lr ?? '?'}; the time and counts above are those of this run only)`;
}

/** A path as the card shows it: relative to the repository when inside it. */
function shown(p: string): string {
  const r = relative(repoRoot, resolve(p));
  return r.startsWith('..') ? p : r;
}

function readLog(runDir: string): TrainRecord[] {
  const f = join(runDir, 'log.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrainRecord);
}

/** Evaluate the soft tokens and write JUDGEQ.md (and judgeq-loss.svg) beside them; returns the card's path. */
export async function writeJudgeqCard(o: CardOptions): Promise<string> {
  const kind = o.kind ?? 'judgeq';
  const lkv = kind === 'lookaheadkv';
  const modules = lkv ? loadLookaheadModules(o.softFile) : null;
  const soft = modules ?? loadSoftTokens(o.softFile);
  const loaded = loadModelDir(o.modelDir);
  const model = new LlamaModel(loaded.config, loaded.weights);
  const hash = modelHash(loaded.config, loaded.weights);
  const rowsName = lkv ? 'lookahead tokens' : 'soft tokens';
  if (hash !== soft.modelHash) throw new KvevictError(`${o.softFile}: ${rowsName} were trained for another model than ${o.modelDir}`);
  const recipe = JSON.parse(soft.metadata.recipe ?? '{}') as JudgeqRecipe & Partial<LookaheadkvRecipe>;
  const outDir = dirname(resolve(o.softFile));
  const cardFile = join(outDir, lkv ? 'LOOKAHEADKV.md' : 'JUDGEQ.md');
  const svgName = `${basename(o.softFile, '.safetensors')}-loss.svg`;
  if (existsSync(join(o.runDir, 'loss.svg'))) copyFileSync(join(o.runDir, 'loss.svg'), join(outDir, svgName));

  // held-out prompts: the training's held-out set and more of the same kind, with cached greedy responses
  const stop = [...new Set([...loaded.tokenizer.eosTokenIds, ...loaded.config.eosTokenIds])];
  const responses = new ResponseCache(join(o.runDir, `responses-${hash.slice(0, 12)}.jsonl`), hash, recipe.maxResponse ?? 96, stop);
  const prompts = buildPrompts(loaded.tokenizer, {
    count: Math.max(o.heldOut, recipe.heldOutPrompts ?? 0),
    split: 'heldout',
    seed: recipe.seed ?? 1,
    minLength: recipe.minLength ?? 256,
    maxLength: recipe.maxLength ?? 2048,
  });
  const examples: JudgeqExample[] = [];
  for (const p of prompts) {
    const r = responses.get(model, p.tokens);
    if (r.length > 0) examples.push({ prompt: p.tokens, response: r });
  }
  const fileKey = lkv ? 'modules' : 'soft';
  const softOpt =
    resolve(o.softFile) === resolve(lkv ? DEFAULT_LOOKAHEAD_FILE : DEFAULT_SOFT_FILE) ? {} : { [fileKey]: resolve(o.softFile) };
  // the LookaheadKV card sets Judge Q beside it where the model's soft tokens (its own file, else the embedded
  // one) belong to it
  const judgeqFile = withModelFiles(parsePress('judgeq'), o.modelDir).options.soft as string | undefined;
  const judgeqOpt = judgeqFile === undefined ? {} : { soft: judgeqFile };
  const judgeqToo =
    lkv && existsSync(judgeqFile ?? DEFAULT_SOFT_FILE) && loadSoftTokens(judgeqFile ?? DEFAULT_SOFT_FILE).modelHash === hash;
  const methods: MethodSpec[] = lkv
    ? [
        { label: 'snapkv', name: 'snapkv', options: {} },
        { label: 'laq', name: 'laq', options: {} },
        ...(judgeqToo ? [{ label: 'judgeq', name: 'judgeq', options: judgeqOpt }] : []),
        { label: 'lookaheadkv', name: 'lookaheadkv', options: softOpt },
        { label: 'lookaheadkv (w=0)', name: 'lookaheadkv', options: { ...softOpt, noWindow: true } },
      ]
    : [
        { label: 'snapkv', name: 'snapkv', options: {} },
        { label: 'laq', name: 'laq', options: {} },
        { label: 'judgeq', name: 'judgeq', options: softOpt },
        { label: 'judgeq (w=0)', name: 'judgeq', options: { ...softOpt, noWindow: true } },
        { label: 'judgeq+laq', name: 'judgeq+laq', options: softOpt },
        { label: 'judgeq+window', name: 'judgeq+window', options: softOpt },
      ];
  o.progress.write(`${kind} card: hit rates on ${examples.length} held-out prompts\n`);
  const t0 = performance.now();
  const cells = await heldOutFidelity(model, examples, methods, o.budgets);
  const fidelitySeconds = (performance.now() - t0) / 1000;

  let benchmarks = '';
  if (o.benchmarks) {
    const evalDir = join(o.runDir, 'eval');
    const softSpec = fileKey in softOpt ? `:${fileKey}=${softOpt[fileKey]}` : '';
    const names = lkv
      ? ['full', 'snapkv', 'laq', ...(judgeqToo ? ['judgeq'] : []), `lookaheadkv${softSpec}`]
      : ['full', 'snapkv', 'laq', `judgeq${softSpec}`, `judgeq+laq${softSpec}`];
    const presses = names.map((p) => withModelFiles(parsePress(p), o.modelDir));
    const grid = makeGrid(presses, o.budgets, [...MODES]);
    const loadedEngine = loadEngine(o.modelDir);
    const engine = { ...loadedEngine, embedded: o.embedded ?? loadedEngine.embedded };
    const base = { grid, outDir: evalDir, seed: 0, progress: o.progress, log: o.progress, modelDir: o.modelDir };
    // the rows of these settings only: the folder keeps those of an earlier version of the file too
    const jobs = [
      await runEvalJob({ ...base, datasets: ['niah'], lengths: o.needleLengths, depths: [0, 25, 50, 75, 100] }, engine),
      await runEvalJob({ ...base, datasets: CARD_RULER_TASKS, samples: o.rulerSamples }, engine),
    ];
    const rows = withoutFileOptions(jobs.flatMap((j) => j.results.flatMap((r) => r.rows)));
    const needle = rows.filter((r) => r.task === 'niah');
    const ruler = rows.filter((r) => !needle.includes(r));
    benchmarks = [
      '## Needle and RULER-style accuracy',
      '',
      `Through the evaluation grid (\`kvevict eval\`), every method at budgets ${o.budgets.join(', ')}, in both modes (query-aware: the question is compressed with the context; query-agnostic: only the context is compressed and the question comes after). Scores 0 to 100.`,
      '',
      `Needle in a haystack (held-out essays, lengths ${o.needleLengths.join(', ')}, depths 0, 25, 50, 75, 100 %):`,
      '',
      formatMarkdownPivot(needle, 'score'),
      '',
      `RULER-style tasks (${CARD_RULER_TASKS.map((t) => t.slice(6)).join(', ')}; ${o.rulerSamples} cases each, the model's context length):`,
      '',
      formatMarkdownPivot(ruler, 'score'),
      '',
      'Oracle hit rate (%) on those benchmark cases:',
      '',
      formatMarkdownPivot(
        rows.filter((r) => r.press !== 'full'),
        'oracle_hit',
      ),
      '',
    ].join('\n');
  }

  const log = readLog(o.runDir);
  const held = log.filter((r) => r.heldOutLoss !== undefined);
  const trained = log.filter((r) => r.loss !== undefined);
  const seconds = Number(soft.metadata.training_seconds ?? NaN);
  const tokens = Number(soft.metadata.tokens_seen ?? NaN),
    promptsSeen = Number(soft.metadata.prompts_seen ?? NaN);
  const lastTenth = trained.slice(-Math.max(1, Math.ceil(trained.length / 10)));
  const trainEnd = lastTenth.reduce((a, r) => a + r.loss!, 0) / Math.max(1, lastTenth.length);
  const firstTenth = trained.slice(0, Math.max(1, Math.ceil(trained.length / 10)));
  const trainStart = firstTenth.reduce((a, r) => a + r.loss!, 0) / Math.max(1, firstTenth.length);
  const lengths = examples.map((e) => e.prompt.length).sort((a, b) => a - b);
  const c = loaded.config;
  const unit = LOSS_UNIT[kind];
  const lossOf = (x: number) => fmt(x * unit.factor, 4);
  const lora = modules ? `LoRA of rank ${modules.rank} (alpha ${modules.alpha}) on ${modules.targets.join(', ')} in every layer` : '';
  // a file in the model's own folder under the default name is found there without naming it
  const own = resolve(o.softFile) === resolve(modelFileFor(lkv ? DEFAULT_LOOKAHEAD_FILE : DEFAULT_SOFT_FILE, o.modelDir));
  const fileSpec = fileKey in softOpt && !own ? `:${fileKey}=${shown(o.softFile)}` : '';
  const modelSpec = fileKey in softOpt ? ` --model ${shown(o.modelDir)}` : '';
  const use = lkv
    ? fileSpec
      ? `Use them with \`kvevict generate|inspect|eval --model ${shown(o.modelDir)} --press lookaheadkv${fileSpec} --budget B\`.`
      : `They are the default of \`modules\`${modelSpec ? ' on this model' : ''}: \`kvevict generate|inspect|eval${modelSpec} --press lookaheadkv --budget B\`.`
    : fileSpec
      ? `Use them with \`kvevict generate|inspect|eval --model ${shown(o.modelDir)} --press judgeq${fileSpec} --budget B\` (also \`judgeq+laq\`, \`judgeq+window\`).`
      : `They are the default of \`soft\`${modelSpec ? ' on this model' : ''}: \`kvevict generate|inspect|eval${modelSpec} --press judgeq --budget B\` (also \`judgeq+laq\`, \`judgeq+window\`).`;
  const intro = lkv
    ? `\`${basename(o.softFile)}\`: ${soft.count} trained lookahead-token embeddings of size ${soft.hiddenSize} and their ${lora}, active on the lookahead rows only (LookaheadKV, arXiv 2603.10899; methods.md, "LookaheadKV"). ${use} They belong to one model: the file records the model hash \`${soft.modelHash.slice(0, 16)}...\` (sha256 of the architecture fields of config.json and every weight as float32), and any other model is refused.`
    : null;
  const md = [
    `# ${lkv ? 'LookaheadKV modules' : 'Judge Q soft tokens'} for \`${basename(resolve(o.modelDir))}\``,
    '',
    intro ??
      `\`${basename(o.softFile)}\`: ${soft.count} trained soft-token embeddings of size ${soft.hiddenSize} (Judge Q, arXiv 2509.10798; methods.md, "Judge Q"). ${use} They belong to one model: the file records the model hash \`${soft.modelHash.slice(0, 16)}...\` (sha256 of the architecture fields of config.json and every weight as float32), and any other model is refused.`,
    '',
    '## Training',
    '',
    `- Model: ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} query heads, ${c.numKvHeads} KV heads, head size ${c.headDim}, vocabulary of ${c.vocabSize}${c.vocabSize <= 512 ? ' (byte-level)' : ''}, context ${c.maxPositions}.`,
    `- Data: ${recipe.trainPrompts ?? '?'} training prompts from ../shared/data, training split only (half the reference model's synthetic long-context tasks: needle, multi-key, multi-value, multi-query, passkey, variable tracking, common and frequent words; a quarter questions about training-essay passages; a quarter instructions from GPTeacher and self-instruct, a tenth of which is held out), contexts ${recipe.minLength ?? '?'} to ${recipe.maxLength ?? '?'} tokens (log-uniform). Each prompt is paired with the model's own greedy response (at most ${recipe.maxResponse ?? '?'} tokens, full cache), generated once and cached.`,
    lkv
      ? `- Target and loss: per layer and query head, the response tokens' mean attention over the prompt (softmax over prompt and response keys, restricted to the prompt) and the lookahead tokens' mean attention over the prompt (softmax over prompt and lookahead keys, restricted to the prompt), each normalized to sum 1; KL(response || lookahead) averaged over layers and heads, as the paper's loss. The ${soft.count} x ${soft.hiddenSize} lookahead embeddings and the LoRA matrices learn (${fmt(paramCount(modules!) / 1e3, 1)}K parameters); the backward pass runs through the lookahead rows only, over the prompt's cached keys and values.`
      : `- Target and loss: per layer and query head, the response tokens' mean attention over the prompt (softmax over prompt and response keys, restricted to the prompt) against the soft tokens' mean attention over the prompt; mean squared error averaged over layers, heads and prompt positions. Only the ${soft.count} x ${soft.hiddenSize} soft embeddings learn; the backward pass runs through the soft rows only, over the prompt's cached keys and values.`,
    `- Recipe: ${soft.metadata.steps ?? '?'} steps of ${recipe.batch ?? '?'} prompts (${fmt(promptsSeen, 0)} prompts, ${fmt(tokens / 1e6, 2)}M prompt and response tokens), AdamW (beta 0.9 / 0.99, no weight decay), peak learning rate ${recipe.lr ?? '?'} with ${recipe.warmup ?? '?'} warm-up steps and cosine decay to ${recipe.minLrRatio ?? '?'} of it, seed ${recipe.seed ?? '?'}; initialised ${recipe.initFrom ? `from the ${rowsName} of \`${basename(recipe.initFrom)}\`${initNote(recipe.initFrom, kind)}` : `from the embeddings of random vocabulary tokens${lkv ? ' (LoRA: A uniform in +-1/sqrt(in), B zero, so training starts from the frozen model)' : ''}`}${recipe.lengthWeight ? "; each prompt's loss weighed by (L / 1024)^2, since the MSE of attention rows scales as 1 / L^2 and short prompts would otherwise give almost all of the gradient" : ''}. Full recipe in the file's \`recipe\` metadata.`,
    `- Time and machine: ${formatDuration(seconds)} (${fmt(promptsSeen / seconds, 2)} prompts/s, ${fmt(tokens / seconds, 0)} tokens/s) on ${soft.metadata.machine ?? '?'}, with ${soft.metadata.complete === 'true' ? 'every planned step done' : 'the run stopped early by its time limit'} (the time includes generating the greedy responses once).`,
    '',
    `![loss curves](${svgName})`,
    '',
    `Loss (${lkv ? 'KL' : 'MSE, x 1e-6'}${recipe.lengthWeight ? '; each prompt weighed by (L / 1024)^2 as in training' : ''}): train ${lossOf(trainStart)} over the first tenth of the steps, ${lossOf(trainEnd)} over the last tenth; held-out (${recipe.heldOutPrompts ?? '?'} held-out prompts) ${lossOf(held[0]?.heldOutLoss ?? NaN)} at the start, ${lossOf(held[held.length - 1]?.heldOutLoss ?? NaN)} at the end.`,
    '',
    '## Oracle hit rate on held-out prompts',
    '',
    `${examples.length} held-out prompts (held-out essays and keys, held-out instructions; ${lengths[0] ?? 0} to ${lengths[lengths.length - 1] ?? 0} tokens, median ${lengths[lengths.length >> 1] ?? 0}), query-aware. The oracle scores each prompt key by the attention the model's real greedy answer (full cache) pays it; a method's hit rate is the share of the oracle's top-B entries it keeps, per KV head, averaged over layers, heads and prompts (only prompts longer than B count). Defaults: window 32, max pooling of 7, mean over the GQA group; LAQ decodes 8 pseudo tokens on a SnapKV stage-1 cache. ${lkv ? '`lookaheadkv (w=0)` keeps no window.' : '`judgeq (w=0)` keeps no window. For scale, the paper reports 61.4 % for Judge Q against 53.4 % for SnapKV at budget 128 on Llama-3.1-8B.'}`,
    '',
    'Oracle hit rate (%):',
    '',
    fidelityTable(cells, o.budgets, 'hitRate'),
    '',
    "Attention recall (%): the share of the real answer's attention over the prompt that falls on kept entries:",
    '',
    fidelityTable(cells, o.budgets, 'recall'),
    '',
    `(${fmt(fidelitySeconds, 0)} s for this section.)`,
    '',
    benchmarks,
    '## Reproduce',
    '',
    '```',
    `kvevict ${toolOf(kind)} --model ${shown(o.modelDir)} --out ${shown(o.softFile)} --${lkv ? 'lookahead-tokens' : 'soft-tokens'} ${soft.count}${modules ? ` --lora-rank ${modules.rank} --lora-alpha ${modules.alpha} --lora-targets ${modules.targets.join(',')}` : ''} --steps ${recipe.steps ?? '?'} --lr ${recipe.lr ?? '?'} --batch ${recipe.batch ?? '?'} --seed ${recipe.seed ?? '?'} --prompts ${recipe.trainPrompts ?? '?'} --held-out ${recipe.heldOutPrompts ?? '?'} --min-length ${recipe.minLength ?? '?'} --max-length ${recipe.maxLength ?? '?'} --max-response ${recipe.maxResponse ?? '?'} --warmup ${recipe.warmup ?? '?'}${recipe.lengthWeight ? ' --length-weight' : ''}${recipe.initFrom ? ` --init-from ${basename(recipe.initFrom)}` : ''} --card --card-needle-lengths ${o.needleLengths.join(',')}`,
    '```',
    '',
    'The run folder keeps the response cache and a checkpoint: `--resume` continues an interrupted run.',
    '',
  ].join('\n');
  writeFileSync(cardFile, md);
  return cardFile;
}
