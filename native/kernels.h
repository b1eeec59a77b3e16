/* Plain C kernels behind the N-API bindings (addon.c). Row-major float32 throughout. */
#ifndef KVEVICT_KERNELS_H
#define KVEVICT_KERNELS_H

#include <stdint.h>

/* Query rows per attention block (times the GQA group gives the sgemm M). */
#ifndef KV_ATTEND_ROW_BLOCK
#define KV_ATTEND_ROW_BLOCK 64
#endif
/* Keys per attention chunk: scores are [block rows * group, chunk], softmax runs online across chunks. */
#ifndef KV_ATTEND_KEY_CHUNK
#define KV_ATTEND_KEY_CHUNK 512
#endif

/* Scalar IEEE half -> float, exact (the portable twin of vcvtph2ps). */
static inline float kv_half_bits_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu, bits;
  if (e == 0) {
    if (m == 0) bits = sign;
    else { /* subnormal: normalize */
      e = 127 - 15 + 1;
      while (!(m & 0x400u)) { m <<= 1; e--; }
      bits = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else bits = sign | ((e + 127 - 15) << 23) | (m << 13);
  union { uint32_t u; float f; } v = {.u = bits};
  return v.f;
}

/* exp(x) for float, vectorizable; relative error about 2e-7, exact 0 below -87.3, capped at exp(88). */
static inline float kv_expf(float x) {
  /* above 88 the result would round 2^n to infinity; below lo it would be denormal */
  const float hi = 88.0f, lo = -87.3365447505531f;
  if (x > hi) x = hi;
  int under = x < lo;
  if (under) x = lo;
  /* x = n ln2 + r, |r| <= ln2/2 */
  float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  /* Cephes expf polynomial */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { int32_t i; float f; } scale;
  scale.i = ((int32_t)n + 127) << 23;
  float y = p * scale.f;
  return under ? 0.0f : y;
}

#ifdef __AVX512F__
#include <immintrin.h>
/* exp on 16 lanes for x in [-87.3, 88]: kv_expf's range reduction and polynomial, 2^n applied by scalef; lanes
 * outside `keep` are 0. */
static inline __m512 kv_exp16_in_range(__m512 x, __mmask16 keep) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_scalef_ps(keep, p, n);
}

#define KV_EXP16_LO (-87.3365447505531f)

/* kv_expf on 16 lanes: exactly 0 below -87.3, capped at exp(88). */
static inline __m512 kv_exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(KV_EXP16_LO);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  return kv_exp16_in_range(_mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f)), (__mmask16)~under);
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
/* kv_expf on 8 lanes (AVX2 CPUs, where the scalar loops do not vectorize: about 30 cycles an element): the same
 * range reduction and polynomial, 2^n put into the exponent bits; exactly 0 below -87.3, capped at exp(88). */
#define KV_HAVE_EXP8 1
/* The sum of 8 lanes. */
static inline float kv_hsum8(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

static inline __m256 kv_exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365447505531f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
#endif

/* GFLOP/s of independent FMA chains on `threads` pool threads, `iters` rounds each: the compute ceiling. */
double kv_fma_peak_gflops(int threads, long iters);
/* GB/s of a plain read of buf (64-byte aligned, floats a multiple of 64 per thread) on that many threads. */
double kv_read_peak_gbps(int threads, const float *buf, int64_t floats);

/* Output columns per strip of packed weights (kv_pack_weights). */
#define KV_PACK_NR 32

/* Floats of W[n, k] packed: strips of KV_PACK_NR rows of W, each stored k-major ([k][KV_PACK_NR]), zero-padded. */
int64_t kv_packed_floats(int n, int k);
void kv_pack_weights(const float *w, int n, int k, float *out);
/* The same layout of IEEE halves (f16 bits), from half weights: half the bytes, widened in the micro-kernel. */
void kv_pack_weights_half(const uint16_t *w, int n, int k, uint16_t *out);
/* Part p's C[m, n[p]] = X[m, k] . W_p^T (+ C when accumulate; row strides ldx, ldc[p]), the parts' weights packed
 * by kv_pack_weights (or kv_pack_weights_half, with `half`) and stored back to back (kv_packed_floats(n[p], k)
 * elements each): one packing of X, and every strip of every part one work item of one pass (one part: a single
 * product; a layer's q, k and v; its gate and up). 0, -1 when scratch memory could not be allocated, -2 a bad
 * part count. */
#define KV_GEMM_MAX_PARTS 4
int kv_sgemm_packed_parts(int m, int k, const float *x, int64_t ldx, const void *packed, int half, int parts, const int *n,
                          float *const *c, const int64_t *ldc, int accumulate);

void kv_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim, float eps);
void kv_rmsnorm_grad(float *dx, float *dw, const float *dy, const float *x, const float *weight, int rows, int dim, float eps);
void kv_rope(float *x, int rows, int heads, int head_dim, const int32_t *positions, const float *cos_t, const float *sin_t);
void kv_silu_mul(float *out, const float *gate, const float *up, int64_t n);
void kv_add(float *out, const float *a, const float *b, int64_t n);

/* Causal softmax attention of query heads first_head .. first_head+group-1 against one KV head, whose keys and
 * values are float32 (half == 0) or IEEE half bits (half == 1: an f16 cache, widened as they are read).
 * Returns 0, or -1 when scratch memory could not be allocated. */
int kv_attend_head(const float *q, int64_t q_row_stride, float *out, int rows, int d, int first_head, int group,
                   const int32_t *q_pos, const void *keys, const void *values, int half, const int32_t *k_pos, int n,
                   float scale);

/* Several matrices against one x (q, k, v of a decode row; gate, up): y_p[n_p] (+)= W_p[n_p, k] . x, one pool job. */
#define KV_GEMV_MAX_PARTS 4
typedef struct {
  int n;
  const float *w;  /* float32 weights, or NULL when ... */
  const uint16_t *h; /* ... IEEE half weights (f16 bits) stand in: half the bytes to stream per decode step */
  float *y;
  int bf16;          /* h holds bfloat16 bits instead (a bf16 model's bytes as stored) */
} KvGemvPart;
/* dst[i] = the float32 value of bfloat16 bits src[i] (exact: the bits shifted up), over the thread pool. */
void kv_bf16_to_float(int64_t n, const uint16_t *src, float *dst);
void kv_sgemv_parts(int count, const KvGemvPart *parts, int k, const float *x, int accumulate);
/* The same for nvec vectors at once (x: [nvec, k]; vector v writes parts[p].y + v * parts[p].n): each block of W
 * is read from memory once and stays in cache for the other vectors (a batched decode step). */
#define KV_GEMV_MAX_VECS 16
void kv_sgemv_parts_n(int count, const KvGemvPart *parts, int k, const float *x, int nvec, int accumulate);

/* dst[i] = (float)src[i] for IEEE half bits src (exact), over the thread pool. */
void kv_half_to_float(int64_t n, const uint16_t *src, float *dst);
/* dst[i] = half(src[i]), round to nearest even (overflow to infinity, as the IEEE conversion does). */
void kv_float_to_half(int64_t n, const float *src, uint16_t *dst);
/* The same conversions on the calling thread only (inside a pool job, or for a few rows). */
void kv_widen_halves(int64_t n, const uint16_t *src, float *dst);
void kv_narrow_floats(int64_t n, const float *src, uint16_t *dst);

/* Row softmax pieces (attend.c, AVX-512 where compiled for it): the largest of s[0..n), and
 * s[j] = exp(s[j] - m) in place returning their sum. */
float kv_row_max(const float *s, int n);
float kv_exp_shift_sum(float *s, int n, float m);

/* Training's attention rows (train.c): row r of a [rows, n] score block sees keys 0 .. r0 + r % m.
 * causal_softmax: e = exp(e - rowmax) on the visible keys, 0 after; inv[r] = 1 / row sum.
 * causal_softmax_grad: ds = e * inv * (ds - dd[r]) on the visible keys, 0 after.
 * silu_mul_grad: dg += dy * u * silu'(g), du += dy * silu(g) (either may be NULL). */
void kv_causal_softmax(float *e, float *inv, int rows, int n, int m, int r0);
void kv_causal_softmax_grad(float *ds, const float *e, const float *inv, const float *dd, int rows, int n, int m, int r0);
void kv_softmax_rows_accumulate(float *s, int rows, int group, int width, const int32_t *vis, float *out);
void kv_softmax_rows_max(float *s, int rows, int group, int width, const int32_t *vis, float *out);
void kv_silu_mul_grad(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t count);
/* Softmax cross-entropy rows of logits[rows, vocab]: argmax of every row; where weights[r] != 0, lse[r] =
 * log sum exp and row_loss[r] = lse[r] - logits[r, targets[r]] (0 elsewhere). The gradient accumulates
 * grad[r, j] += coef[r] * (exp(logits[r, j] - lse[r]) - [j == targets[r]]) on rows with coef[r] != 0. */
void kv_cross_entropy(const float *logits, int rows, int vocab, const int32_t *targets, const float *weights, float *lse,
                      float *row_loss, int32_t *argmax);
void kv_cross_entropy_grad(float *grad, const float *logits, int rows, int vocab, const int32_t *targets,
                           const float *lse, const float *coef);

/* Block-quantized weights (quant.c). Types in the order of src/quant/formats.ts's QUANT_TYPES. */
enum { KV_Q4_0, KV_Q4_1, KV_Q5_0, KV_Q5_1, KV_Q8_0, KV_Q4_K, KV_Q5_K, KV_Q6_K, KV_QUANT_TYPES };
int kv_quant_block_size(int type);
int kv_quant_block_bytes(int type);
typedef struct {
  int type, n;
  const uint8_t *data; /* n rows of k / block_size blocks */
  float *y;
} KvQuantPart;
/* parts[p].y (+)= W_p . x with x quantized to 8 bits in blocks of 32; k a multiple of every part's block size.
 * Returns 0, or < 0 when k is not a multiple of 32 (-1) or memory ran out (-2). */
int kv_quant_gemv_parts(int count, const KvQuantPart *parts, int k, const float *x, int accumulate);
/* The same for nvec <= KV_GEMV_MAX_VECS vectors (x: [nvec, k]; vector v writes parts[p].y + v * parts[p].n). */
int kv_quant_gemv_parts_n(int count, const KvQuantPart *parts, int k, const float *x, int nvec, int accumulate);
/* `blocks` blocks of `type` at src to float32 (pool-parallel; _st: the calling thread only). */
void kv_dequant_blocks(int type, const uint8_t *src, int64_t blocks, float *dst);
void kv_dequant_blocks_st(int type, const uint8_t *src, int64_t blocks, float *dst);
/* The activation quantization and the portable row product (exposed for the tests' native-vs-portable check). */
void kv_quantize_activations(int k, const float *x, int8_t *q, float *d, int32_t *sums);
/* One block's levels lifted to unsigned bytes (u = q + the type's offset: Q8_0 128, Q4_0 8, Q5_0 16, Q6_K 32,
 * else 0), four to a word, and its per-16 terms a[], b[] (weight = a * q + b): the integer prefill's decoder. */
int kv_quant_level_offset(int type);
void kv_quant_block_levels(int type, const uint8_t *p, uint32_t *u, float *a, float *b);
/* Y[m, n] (+)= X[m, k] . W[n, k]^T in integer products (native/qgemm.c); 0, or -1 bad k, -2 out of memory,
 * -3 not built (neither AVX-512 VNNI nor AVX2): the caller widens instead */
int kv_quant_gemm(int type, const uint8_t *w, int n, int k, const float *x, int m, float *y, int ldy, int accumulate);
int kv_quant_gemm_available(void);
/* Y_p[m, n_p] (+)= X[m, k] . W_p[n_p, k]^T for bfloat16 W on vdpbf16ps, X rounded to bf16 (native/bgemm.c); 0, or -1 k odd,
 * -2 out of memory, -3 not built (no AVX512_BF16). kv_bf16_gemm_fast: 1 where it is built and the CPU runs
 * vdpbf16ps clearly faster than the float32 FMA (timed once per process). */
typedef struct {
  const uint16_t *w; /* [n, k] bf16 bits */
  int n;
  float *y; /* [m, ldy] */
  int ldy;
} KvBf16Part;
/* up to KV_GEMM_MAX_PARTS matrices against one X (-4: a bad count) */
int kv_bf16_gemm(int count, const KvBf16Part *parts, int k, const float *x, int m, int accumulate);
int kv_bf16_gemm_fast(void);
float kv_quant_row_dot_scalar(int type, const uint8_t *row, int k, const int8_t *q, const float *d, const int32_t *sums);

#endif

