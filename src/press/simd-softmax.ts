/**
 * The softmax sums of the attention scorers, in WebAssembly SIMD: for each row of a score block, its softmax
 * over the keys the row sees is added to one accumulator per query head. This is the scorers' hot loop
 * (w x G x L exponentials per layer and KV head; L^2/2 x H for H2O), four lanes at a time.
 *
 * The module is assembled here from its instructions (no toolchain needed). Per row:
 *   max over s[0..n); e_j = exp(s_j - max) written over s (f32: Cephes' expf polynomial, about 1 ulp, with
 *   x clamped to -87 so 2^k stays normal); sum in f64 (f32 lanes flushed every 64 entries);
 *   out[j] += e_j / sum in f64.
 * Callers without SIMD support (WebAssembly.validate fails) use the TypeScript loop in attention-mass.ts.
 */

const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function f32c(x: number): number[] {
  const b = new Uint8Array(new Float32Array([x]).buffer);
  return [0x43, ...b];
}

function f64c(x: number): number[] {
  const b = new Uint8Array(new Float64Array([x]).buffer);
  return [0x44, ...b];
}

const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];
const mem = (offset = 0): number[] => [0, ...uleb(offset)]; // align hint 1 byte: any address is fine

// instructions used below
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = [0x6a], I32_MUL = [0x6c], I32_AND = [0x71], I32_SHL = [0x74], I32_GE_U = [0x4f], I32_LT_U = [0x49], I32_EQZ = [0x45];
const I32_LOAD = [0x28, 2, 0];
const F32_LOAD = [0x2a, 0, 0], F32_STORE = [0x38, 0, 0], F64_LOAD = [0x2b, 0, 0], F64_STORE = [0x39, 0, 0];
const F32_MAX = [0x97], F32_SUB = [0x93], F64_ADD = [0xa0], F64_MUL = [0xa2], F64_DIV = [0xa3], F64_PROMOTE = [0xbb];
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], IF = [0x04, 0x40], END = [0x0b];
const br = (d: number) => [0x0c, ...uleb(d)];
const brIf = (d: number) => [0x0d, ...uleb(d)];
const V_LOAD = simd(0x00, ...mem()), V_STORE = simd(0x0b, ...mem()), V_LOAD64_ZERO = simd(0x5d, ...mem());
const F32X4_SPLAT = simd(0x13), F64X2_SPLAT = simd(0x14), I32X4_SPLAT = simd(0x11);
const f32Lane = (l: number) => simd(0x1f, l);
const F32X4_ADD = simd(0xe4), F32X4_SUB = simd(0xe5), F32X4_MUL = simd(0xe6), F32X4_MAX = simd(0xe9), F32X4_NEAREST = simd(0x6a);
const I32X4_TRUNC_SAT_F32X4_S = simd(0xf8), I32X4_ADD = simd(0xae), I32X4_SHL = simd(0xab);
const F64X2_ADD = simd(0xf0), F64X2_MUL = simd(0xf2), F64X2_PROMOTE_LOW = simd(0x5f);

/** Cephes expf: exp(x) = 2^k (1 + r + r^2 P(r)), k = round(x log2 e), r = x - k ln 2 in two parts. */
const LOG2E = 1.44269504088896341;
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
const P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];

/** Emits exp of the v128 in local `x` (all lanes <= 0) into local `x`; uses locals `k` and `r`. */
function expInPlace(x: number, k: number, r: number): number[] {
  const splat = (c: number) => [...f32c(c), ...F32X4_SPLAT];
  const code: number[] = [
    // x = max(x, -87)
    ...get(x), ...splat(-87), ...F32X4_MAX, ...set(x),
    // k = nearest(x log2e)
    ...get(x), ...splat(LOG2E), ...F32X4_MUL, ...F32X4_NEAREST, ...set(k),
    // r = x - k ln2_hi - k ln2_lo
    ...get(x), ...get(k), ...splat(LN2_HI), ...F32X4_MUL, ...F32X4_SUB,
    ...get(k), ...splat(LN2_LO), ...F32X4_MUL, ...F32X4_SUB, ...set(r),
    // p = P0 r + P1, then (p r + Pi) ...
    ...splat(P[0]), ...get(r), ...F32X4_MUL, ...splat(P[1]), ...F32X4_ADD,
  ];
  for (let i = 2; i < P.length; i++) code.push(...get(r), ...F32X4_MUL, ...splat(P[i]), ...F32X4_ADD);
  code.push(
    // p r^2 + r + 1
    ...get(r), ...F32X4_MUL, ...get(r), ...F32X4_MUL, ...get(r), ...F32X4_ADD, ...splat(1), ...F32X4_ADD,
    // times 2^k: ((k + 127) << 23) as f32 bits
    ...get(k), ...I32X4_TRUNC_SAT_F32X4_S, ...i32c(127), ...I32X4_SPLAT, ...I32X4_ADD, ...i32c(23), ...I32X4_SHL,
    ...F32X4_MUL, ...set(x),
  );
  return code;
}

/** row(sOff, n, outOff): the softmax of the n f32 at sOff added to the n f64 at outOff (byte offsets). */
function rowBody(): number[] {
  // params 0 sOff, 1 n, 2 outOff
  const J = 3, END4 = 4, CHUNK = 5; // i32
  const MAX = 6; // f32
  const SUM = 7, INV = 8; // f64
  const VX = 9, VK = 10, VR = 11, VMAX = 12, VSUM = 13, VINV = 14; // v128
  const locals = [[3, I32], [1, F32], [2, F64], [6, V128]];
  const addrS = (j: number) => [...get(0), ...get(j), ...i32c(2), ...I32_SHL, ...I32_ADD];
  const addrO = (j: number) => [...get(2), ...get(j), ...i32c(3), ...I32_SHL, ...I32_ADD];
  const inc = (j: number, by: number) => [...get(j), ...i32c(by), ...I32_ADD, ...set(j)];
  const code: number[] = [
    // end4 = n & ~3
    ...get(1), ...i32c(-4), ...I32_AND, ...set(END4),
    // pass 1: max
    ...f32c(-Infinity), ...F32X4_SPLAT, ...set(VMAX),
    ...i32c(0), ...set(J),
    ...BLOCK, ...LOOP,
    ...get(J), ...get(END4), ...I32_GE_U, ...brIf(1),
    ...get(VMAX), ...addrS(J), ...V_LOAD, ...F32X4_MAX, ...set(VMAX),
    ...inc(J, 4), ...br(0),
    ...END, ...END,
    ...get(VMAX), ...f32Lane(0), ...get(VMAX), ...f32Lane(1), ...F32_MAX,
    ...get(VMAX), ...f32Lane(2), ...get(VMAX), ...f32Lane(3), ...F32_MAX, ...F32_MAX, ...set(MAX),
    ...BLOCK, ...LOOP,
    ...get(J), ...get(1), ...I32_GE_U, ...brIf(1),
    ...get(MAX), ...addrS(J), ...F32_LOAD, ...F32_MAX, ...set(MAX),
    ...inc(J, 1), ...br(0),
    ...END, ...END,
    // pass 2: exponentials in place, sum
    ...get(MAX), ...F32X4_SPLAT, ...set(VMAX),
    ...f64c(0), ...set(SUM),
    ...i32c(0), ...set(J),
    ...BLOCK, ...LOOP,
    ...get(J), ...get(END4), ...I32_GE_U, ...brIf(1),
    // chunk = min(j + 64, end4)
    ...get(J), ...i32c(64), ...I32_ADD, ...set(CHUNK),
    ...get(CHUNK), ...get(END4), ...I32_GE_U, ...IF, ...get(END4), ...set(CHUNK), ...END,
    ...f32c(0), ...F32X4_SPLAT, ...set(VSUM),
    ...BLOCK, ...LOOP,
    ...get(J), ...get(CHUNK), ...I32_GE_U, ...brIf(1),
    ...addrS(J), ...V_LOAD, ...get(VMAX), ...F32X4_SUB, ...set(VX),
    ...expInPlace(VX, VK, VR),
    ...addrS(J), ...get(VX), ...V_STORE,
    ...get(VSUM), ...get(VX), ...F32X4_ADD, ...set(VSUM),
    ...inc(J, 4), ...br(0),
    ...END, ...END,
    ...get(SUM),
    ...get(VSUM), ...f32Lane(0), ...F64_PROMOTE, ...F64_ADD,
    ...get(VSUM), ...f32Lane(1), ...F64_PROMOTE, ...F64_ADD,
    ...get(VSUM), ...f32Lane(2), ...F64_PROMOTE, ...F64_ADD,
    ...get(VSUM), ...f32Lane(3), ...F64_PROMOTE, ...F64_ADD,
    ...set(SUM),
    ...br(0),
    ...END, ...END,
    // tail: up to 3 entries, one at a time through lane 0
    ...BLOCK, ...LOOP,
    ...get(J), ...get(1), ...I32_GE_U, ...brIf(1),
    ...addrS(J), ...F32_LOAD, ...get(MAX), ...F32_SUB, ...F32X4_SPLAT, ...set(VX),
    ...expInPlace(VX, VK, VR),
    ...addrS(J), ...get(VX), ...f32Lane(0), ...F32_STORE,
    ...get(SUM), ...get(VX), ...f32Lane(0), ...F64_PROMOTE, ...F64_ADD, ...set(SUM),
    ...inc(J, 1), ...br(0),
    ...END, ...END,
    // pass 3: out += e / sum, two at a time in f64
    ...f64c(1), ...get(SUM), ...F64_DIV, ...tee(INV), ...F64X2_SPLAT, ...set(VINV),
    ...i32c(0), ...set(J),
    // end4 now means n & ~1
    ...get(1), ...i32c(-2), ...I32_AND, ...set(END4),
    ...BLOCK, ...LOOP,
    ...get(J), ...get(END4), ...I32_GE_U, ...brIf(1),
    ...addrO(J),
    ...addrO(J), ...V_LOAD,
    ...addrS(J), ...V_LOAD64_ZERO, ...F64X2_PROMOTE_LOW, ...get(VINV), ...F64X2_MUL,
    ...F64X2_ADD, ...V_STORE,
    ...inc(J, 2), ...br(0),
    ...END, ...END,
    ...get(J), ...get(1), ...I32_LT_U, ...IF,
    ...addrO(J),
    ...addrO(J), ...F64_LOAD, ...addrS(J), ...F32_LOAD, ...F64_PROMOTE, ...get(INV), ...F64_MUL, ...F64_ADD,
    ...F64_STORE,
    ...END,
  ];
  return body(locals, code);
}

/**
 * block(sOff, m, G, width, visOff, outOff, outStride): rows r < m of a [m x G, width] score block; row r's
 * first vis[r] entries are visible; query head g's softmax goes to the f64 accumulator at outOff + g outStride.
 */
function blockBody(): number[] {
  // params 0 sOff, 1 m, 2 G, 3 width, 4 visOff, 5 outOff, 6 outStride (bytes)
  const R = 7, G = 8, VIS = 9;
  const locals = [[3, I32]];
  const code: number[] = [
    ...i32c(0), ...set(R),
    ...BLOCK, ...LOOP,
    ...get(R), ...get(1), ...I32_GE_U, ...brIf(1),
    ...get(4), ...get(R), ...i32c(2), ...I32_SHL, ...I32_ADD, ...I32_LOAD, ...set(VIS),
    ...i32c(0), ...set(G),
    ...BLOCK, ...LOOP,
    ...get(G), ...get(2), ...I32_GE_U, ...brIf(1),
    ...get(VIS), ...I32_EQZ, ...brIf(1), // nothing visible: skip the row
    // row(sOff + ((r G + g) width) 4, vis, outOff + g outStride)
    ...get(0), ...get(R), ...get(2), ...I32_MUL, ...get(G), ...I32_ADD, ...get(3), ...I32_MUL, ...i32c(2), ...I32_SHL, ...I32_ADD,
    ...get(VIS),
    ...get(5), ...get(G), ...get(6), ...I32_MUL, ...I32_ADD,
    0x10, 0, // call row
    ...get(G), ...i32c(1), ...I32_ADD, ...set(G), ...br(0),
    ...END, ...END,
    ...get(R), ...i32c(1), ...I32_ADD, ...set(R), ...br(0),
    ...END, ...END,
  ];
  return body(locals, code);
}

function body(locals: number[][], code: number[]): number[] {
  const l = [...uleb(locals.length), ...locals.flatMap(([n, t]) => [...uleb(n), t])];
  const b = [...l, ...code, ...END];
  return [...uleb(b.length), ...b];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

/** The module's bytes: imports env.memory, exports `block`. */
export function simdSoftmaxModule(): Uint8Array<ArrayBuffer> {
  const types = [2, 0x60, 3, I32, I32, I32, 0, 0x60, 7, I32, I32, I32, I32, I32, I32, I32, 0];
  const imports = [1, ...name('env'), ...name('memory'), 0x02, 0x00, 1];
  const funcs = [2, 0, 1];
  const exports = [1, ...name('block'), 0x00, 1];
  const code = [2, ...rowBody(), ...blockBody()];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(2, imports), ...section(3, funcs), ...section(7, exports), ...section(10, code),
  ]);
}

type BlockFn = (sOff: number, m: number, G: number, width: number, visOff: number, outOff: number, outStride: number) => void;

/** A WebAssembly memory with the score block, the visible counts and the accumulators laid out in it. */
export class SimdSoftmax {
  private readonly memory: WebAssembly.Memory;
  private readonly block: BlockFn;
  private sOff = 0;
  private visOff = 0;
  private outOff = 0;
  /** [rows x G, width] scores: sgemm writes here */
  s = new Float32Array(0);
  vis = new Int32Array(0);
  out = new Float64Array(0);

  constructor() {
    this.memory = new WebAssembly.Memory({ initial: 1 });
    const mod = new WebAssembly.Module(simdSoftmaxModule());
    const inst = new WebAssembly.Instance(mod, { env: { memory: this.memory } });
    this.block = inst.exports.block as BlockFn;
  }

  /** Lay out room for `sFloats` scores, `rows` counts and `outDoubles` accumulators; views are renewed. */
  reserve(sFloats: number, rows: number, outDoubles: number): void {
    const sBytes = (sFloats + 4) * 4; // slack: the last row may be read a vector past its end
    this.sOff = 0;
    this.visOff = align(sBytes, 16);
    this.outOff = align(this.visOff + rows * 4, 16);
    const need = this.outOff + outDoubles * 8;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    const buf = this.memory.buffer;
    this.s = new Float32Array(buf, this.sOff, sFloats + 4);
    this.vis = new Int32Array(buf, this.visOff, rows);
    this.out = new Float64Array(buf, this.outOff, outDoubles);
  }

  /** Accumulate the block's softmaxes into `out` (G accumulators of `stride` doubles each). */
  run(m: number, G: number, width: number, stride: number): void {
    this.block(this.sOff, m, G, width, this.visOff, this.outOff, stride * 8);
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

let instance: SimdSoftmax | null | undefined;

/** The shared SIMD softmax, or null when this runtime has no WebAssembly SIMD (KVEVICT_SIMD=0 turns it off). */
export function simdSoftmax(): SimdSoftmax | null {
  if (instance !== undefined) return instance;
  if (process.env.KVEVICT_SIMD === '0' || typeof WebAssembly === 'undefined' || !WebAssembly.validate(simdSoftmaxModule())) return (instance = null);
  return (instance = new SimdSoftmax());
}
