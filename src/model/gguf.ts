/**
 * GGUF v3 (llama.cpp's model format): the types and permutation (gguf/format.ts), the writer (gguf/write.ts), the
 * reader (gguf/read.ts) and the model a file holds (gguf/load.ts).
 */
export * from './gguf/format.js';
export * from './gguf/write.js';
export * from './gguf/read.js';
export * from './gguf/load.js';
