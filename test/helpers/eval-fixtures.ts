import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, makeByteTokenizerConfig, makeByteTokenizerJson } from '../../src/model/tokenizer.js';

/** A byte-level tokenizer with the ChatML template (one token per UTF-8 byte), as the reference model has. */
export function byteTokenizer(): Tokenizer {
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  return new Tokenizer(makeByteTokenizerJson(specials) as Record<string, unknown>, makeByteTokenizerConfig(specials) as Record<string, unknown>);
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'kvevict-eval-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Write lines to DIR/name and return the path. */
export function writeLines(dir: string, name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}
