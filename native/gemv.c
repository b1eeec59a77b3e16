/*
 * y = W x (+ y) for one decode row: a memory-bound stream over W, so the kernel's job is to read W once at full
 * bandwidth. Row blocks of W are shared out on the thread pool (the caller keeps taking blocks until none are
 * left, so a helper that is not scheduled in time costs nothing and a call is never slower than one thread).
 * Several matrices that share x (q, k, v; gate, up) run as one job: one round of thread synchronization for all.
 * Inside a block, row after row against x held in L1, with AVX-512 FMA where the compiler targets it.
 * Weights may also be IEEE halves (f16), widened in registers (vcvtph2ps): the same stream at half the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

/* About 256 KB of W per block: each thread streams long runs of W (64 KB blocks measured 20-40% slower on two
 * threads), still fine enough to balance them. */
#ifndef GEMV_BLOCK_FLOATS
#define GEMV_BLOCK_FLOATS (1 << 16)
#endif
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 2048
#endif
/* Below this many float weights (256 KB) one thread is faster than waking another. */
#define GEMV_PARALLEL_MIN (1 << 16)

/* bfloat16 bits -> float32: the high half of its bits. */
static inline float bf16_value(uint16_t h) {
  union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
  return v.f;
}

/* Scalar float -> IEEE half, round to nearest even (the portable twin of vcvtps2ph). */
static inline uint16_t float_to_half(float f) {
  union { float f; uint32_t u; } v = {.f = f};
  const uint32_t u = v.u, sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xffu;
  uint32_t m = u & 0x7fffffu;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    m |= 0x800000u;
    const int shift = 14 - e;
    uint32_t hm = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (hm & 1))) hm++;
    return (uint16_t)(sign | hm);
  }
  uint32_t hm = m >> 13;
  const uint32_t rem = m & 0x1fffu;
  uint32_t he = (uint32_t)e;
  if (rem > 0x1000u || (rem == 0x1000u && (hm & 1))) {
    if (++hm == 0x400u) {
      hm = 0;
      if (++he >= 31) return (uint16_t)(sign | 0x7c00u);
    }
  }
  return (uint16_t)(sign | (he << 10) | hm);
}

/*
 * y[r] (+)= W[r, :] . x for rows [0, rows), W float32 (wf) or IEEE halves (wh, widened exactly as they are read:
 * the same stream at half the bytes). One row at a time, front to back: W is read as a single sequential stream,
 * which the hardware prefetchers follow at full speed (interleaving several rows measured about half as fast on
 * AVX-512 Zen). Four accumulators per row: with one, a row's FMA chain (4 cycles each) limited a thread to about
 * 28 GB/s; four measured 5-8% more bandwidth. Always inlined into the two calls below, one per weight type.
 */
static inline __attribute__((always_inline)) void gemv_rows(int rows, int k, const float *wf, const uint16_t *wh, const int bf,
                                                          const float *x, float *y, int accumulate) {
#ifdef __AVX512F__
#define H16(p) (bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16)) \
                   : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p))))
#define W16(i) (wh ? H16(wh + r0 + (i)) : _mm512_loadu_ps(wf + r0 + (i)))
  const int kv = k & ~15;
  const __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1u);
  for (int r = 0; r < rows; r++) {
    const int64_t r0 = (int64_t)r * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= k; i += 64) {
      /* a few KB ahead: the stream alone left DRAM bandwidth unused (the FMAs hold the loads back) */
      const char *ahead = wh ? (const char *)(wh + r0 + i) + GEMV_PREFETCH : (const char *)(wf + r0 + i) + GEMV_PREFETCH;
      _mm_prefetch(ahead, _MM_HINT_T0);
      _mm_prefetch(ahead + 64, _MM_HINT_T0);
      if (!wh) {
        _mm_prefetch(ahead + 128, _MM_HINT_T0);
        _mm_prefetch(ahead + 192, _MM_HINT_T0);
      }
      a0 = _mm512_fmadd_ps(W16(i), _mm512_loadu_ps(x + i), a0);
      a1 = _mm512_fmadd_ps(W16(i + 16), _mm512_loadu_ps(x + i + 16), a1);
      a2 = _mm512_fmadd_ps(W16(i + 32), _mm512_loadu_ps(x + i + 32), a2);
      a3 = _mm512_fmadd_ps(W16(i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i < kv; i += 16) a0 = _mm512_fmadd_ps(W16(i), _mm512_loadu_ps(x + i), a0);
    if (tail) {
      __m512 wt;
      if (wh) {
        const __m256i ht = _mm256_maskz_loadu_epi16(tail, wh + r0 + i);
        wt = bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(ht), 16)) : _mm512_cvtph_ps(ht);
      } else {
        wt = _mm512_maskz_loadu_ps(tail, wf + r0 + i);
      }
      a0 = _mm512_fmadd_ps(wt, _mm512_maskz_loadu_ps(tail, x + i), a0);
    }
    const float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    y[r] = accumulate ? y[r] + s : s;
  }
#undef W16
#undef H16
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  /* the same stream on 8-float vectors (AVX2 CPUs: Zen 2-4, most Intel cores before AVX-512) */
#define H8(p) (bf ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16)) \
                  : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))))
#define W8(i) (wh ? H8(wh + r0 + (i)) : _mm256_loadu_ps(wf + r0 + (i)))
  for (int r = 0; r < rows; r++) {
    const int64_t r0 = (int64_t)r * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= k; i += 32) {
      a0 = _mm256_fmadd_ps(W8(i), _mm256_loadu_ps(x + i), a0);
      a1 = _mm256_fmadd_ps(W8(i + 8), _mm256_loadu_ps(x + i + 8), a1);
      a2 = _mm256_fmadd_ps(W8(i + 16), _mm256_loadu_ps(x + i + 16), a2);
      a3 = _mm256_fmadd_ps(W8(i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(W8(i), _mm256_loadu_ps(x + i), a0);
    float s = kv_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < k; i++) s += (wh ? (bf ? bf16_value(wh[r0 + i]) : kv_half_bits_to_float(wh[r0 + i])) : wf[r0 + i]) * x[i];
    y[r] = accumulate ? y[r] + s : s;
  }
#undef W8
#undef H8
#else
  enum { L = 16 };
  for (int r = 0; r < rows; r++) {
    const int64_t r0 = (int64_t)r * k;
    float acc[L] = {0};
    int i = 0;
    for (; i + L <= k; i += L)
      for (int l = 0; l < L; l++)
        acc[l] += (wh ? (bf ? bf16_value(wh[r0 + i + l]) : kv_half_bits_to_float(wh[r0 + i + l])) : wf[r0 + i + l]) * x[i + l];
    float s = 0.0f;
    for (int l = 0; l < L; l++) s += acc[l];
    for (; i < k; i++) s += (wh ? (bf ? bf16_value(wh[r0 + i]) : kv_half_bits_to_float(wh[r0 + i])) : wf[r0 + i]) * x[i];
    y[r] = accumulate ? y[r] + s : s;
  }
#endif
}

/*
 * bf16 rows without widening instructions: a 32-bit lane holding two bfloat16 weights (2i low, 2i + 1 high) gives
 * the high one's float32 value by masking off the low half and the low one's by shifting it up, so a vector of
 * 2V weights becomes two float vectors in two integer operations. x is reordered to match once per call (within
 * each chunk of 2V elements: the even-numbered ones, then the odd-numbered ones); the products stay exact. On Zen 4
 * the zero-extending widen (vpmovzxwd, then a shift) held one core to 13 GB/s of bf16 weights against 25 GB/s
 * this way, and two cores to 26 against 36 (as fast as the f16 rows).
 */
#if defined(__AVX512F__)
#define BF16_PAIR_CHUNK 32
#elif defined(__AVX2__) && defined(__FMA__)
#define BF16_PAIR_CHUNK 16
#else
#define BF16_PAIR_CHUNK 0
#endif

/* xp = x reordered for bf16_rows: whole chunks of BF16_PAIR_CHUNK split into even and odd positions, the tail as is. */
static void bf16_pair_order(int k, const float *x, float *xp) {
  int i = 0;
#if BF16_PAIR_CHUNK
  enum { C = BF16_PAIR_CHUNK, HALF = BF16_PAIR_CHUNK / 2 };
  for (; i + C <= k; i += C)
    for (int l = 0; l < HALF; l++) {
      xp[i + l] = x[i + 2 * l];
      xp[i + HALF + l] = x[i + 2 * l + 1];
    }
#endif
  for (; i < k; i++) xp[i] = x[i];
}

/* y[r] (+)= W[r, :] . x for bf16 rows, xp from bf16_pair_order: the same single stream as gemv_rows. */
static void bf16_rows(int rows, int k, const uint16_t *wh, const float *xp, float *y, int accumulate) {
#if defined(__AVX512F__)
  const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
#define LO(v) _mm512_castsi512_ps(_mm512_slli_epi32(v, 16))
#define HI(v) _mm512_castsi512_ps(_mm512_and_si512(v, high))
  for (int r = 0; r < rows; r++) {
    const uint16_t *w = wh + (int64_t)r * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= k; i += 64) {
      _mm_prefetch((const char *)(w + i) + GEMV_PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)(w + i) + GEMV_PREFETCH + 64, _MM_HINT_T0);
      const __m512i v0 = _mm512_loadu_si512(w + i), v1 = _mm512_loadu_si512(w + i + 32);
      a0 = _mm512_fmadd_ps(LO(v0), _mm512_loadu_ps(xp + i), a0);
      a1 = _mm512_fmadd_ps(HI(v0), _mm512_loadu_ps(xp + i + 16), a1);
      a2 = _mm512_fmadd_ps(LO(v1), _mm512_loadu_ps(xp + i + 32), a2);
      a3 = _mm512_fmadd_ps(HI(v1), _mm512_loadu_ps(xp + i + 48), a3);
    }
    if (i + 32 <= k) {
      const __m512i v0 = _mm512_loadu_si512(w + i);
      a0 = _mm512_fmadd_ps(LO(v0), _mm512_loadu_ps(xp + i), a0);
      a1 = _mm512_fmadd_ps(HI(v0), _mm512_loadu_ps(xp + i + 16), a1);
      i += 32;
    }
    for (; i < k; i += 16) { /* the tail, in x's own order */
      const __mmask16 m = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1u);
      const __m512 wt = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + i)), 16));
      a2 = _mm512_fmadd_ps(wt, _mm512_maskz_loadu_ps(m, xp + i), a2);
    }
    const float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    y[r] = accumulate ? y[r] + s : s;
  }
#undef LO
#undef HI
#elif BF16_PAIR_CHUNK
  const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
#define LO(v) _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
#define HI(v) _mm256_castsi256_ps(_mm256_and_si256(v, high))
  for (int r = 0; r < rows; r++) {
    const uint16_t *w = wh + (int64_t)r * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= k; i += 32) {
      const __m256i v0 = _mm256_loadu_si256((const __m256i *)(w + i)), v1 = _mm256_loadu_si256((const __m256i *)(w + i + 16));
      a0 = _mm256_fmadd_ps(LO(v0), _mm256_loadu_ps(xp + i), a0);
      a1 = _mm256_fmadd_ps(HI(v0), _mm256_loadu_ps(xp + i + 8), a1);
      a2 = _mm256_fmadd_ps(LO(v1), _mm256_loadu_ps(xp + i + 16), a2);
      a3 = _mm256_fmadd_ps(HI(v1), _mm256_loadu_ps(xp + i + 24), a3);
    }
    if (i + 16 <= k) {
      const __m256i v0 = _mm256_loadu_si256((const __m256i *)(w + i));
      a0 = _mm256_fmadd_ps(LO(v0), _mm256_loadu_ps(xp + i), a0);
      a1 = _mm256_fmadd_ps(HI(v0), _mm256_loadu_ps(xp + i + 8), a1);
      i += 16;
    }
    float s = kv_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < k; i++) s += bf16_value(w[i]) * xp[i];
    y[r] = accumulate ? y[r] + s : s;
  }
#undef LO
#undef HI
#else
  gemv_rows(rows, k, NULL, wh, 1, xp, y, accumulate);
#endif
}

typedef struct {
  int k, accumulate, rows_per_block, nvec;
  const KvGemvPart *parts;
  int first_block[KV_GEMV_MAX_PARTS + 1];
  const float *x;
  const float *xp; /* x in bf16_pair_order, where a part is bf16 */
} GemvJob;

/* Blocks [b, e) of rows, numbered across the parts. */
static void gemv_blocks(void *arg, int64_t b, int64_t e) {
  const GemvJob *j = arg;
  for (int64_t blk = b; blk < e; blk++) {
    int p = 0;
    while (blk >= j->first_block[p + 1]) p++;
    const KvGemvPart *part = &j->parts[p];
    const int r0 = ((int)blk - j->first_block[p]) * j->rows_per_block;
    const int rows = part->n - r0 < j->rows_per_block ? part->n - r0 : j->rows_per_block;
    const int64_t off = (int64_t)r0 * j->k;
    /* the block (about 256 KB) comes from memory for the first vector and from cache for the others */
    for (int v = 0; v < j->nvec; v++) {
      const float *x = j->x + (int64_t)v * j->k;
      float *y = part->y + (int64_t)v * part->n + r0;
      if (part->h && part->bf16 && j->xp) bf16_rows(rows, j->k, part->h + off, j->xp + (int64_t)v * j->k, y, j->accumulate);
      else if (part->h && part->bf16) gemv_rows(rows, j->k, NULL, part->h + off, 1, x, y, j->accumulate);
      else if (part->h) gemv_rows(rows, j->k, NULL, part->h + off, 0, x, y, j->accumulate);
      else gemv_rows(rows, j->k, part->w + off, NULL, 0, x, y, j->accumulate);
    }
  }
}

void kv_sgemv_parts(int count, const KvGemvPart *parts, int k, const float *x, int accumulate) {
  kv_sgemv_parts_n(count, parts, k, x, 1, accumulate);
}

void kv_sgemv_parts_n(int count, const KvGemvPart *parts, int k, const float *x, int nvec, int accumulate) {
  if (count <= 0 || nvec <= 0) return;
  if (k == 0) {
    if (!accumulate)
      for (int p = 0; p < count; p++) memset(parts[p].y, 0, sizeof(float) * (size_t)parts[p].n * (size_t)nvec);
    return;
  }
  GemvJob j = {.k = k, .accumulate = accumulate, .parts = parts, .x = x, .nvec = nvec};
  /* blocks of about 256 KB of weights, floats or halves */
  int rpb = GEMV_BLOCK_FLOATS * (parts[0].h ? 2 : 1) / k;
  rpb = rpb < 4 ? 4 : rpb / 4 * 4;
  j.rows_per_block = rpb;
  int64_t total = 0; /* bytes of weights */
  j.first_block[0] = 0;
  for (int p = 0; p < count; p++) {
    j.first_block[p + 1] = j.first_block[p] + (parts[p].n + rpb - 1) / rpb;
    total += (int64_t)parts[p].n * k * (parts[p].h ? 2 : 4);
  }
  int bf16 = 0;
  for (int p = 0; p < count; p++) bf16 |= parts[p].h && parts[p].bf16;
  /* where the copy cannot be had, the widening rows run from x itself */
  float *xp = bf16 ? malloc(sizeof(float) * (size_t)k * (size_t)nvec) : NULL;
  if (xp)
    for (int v = 0; v < nvec; v++) bf16_pair_order(k, x + (int64_t)v * k, xp + (int64_t)v * k);
  j.xp = xp;
  /* one block at a time off the pool's shared counter; small products stay on this thread */
  kv_pool_for(j.first_block[count], 1, total < 4 * GEMV_PARALLEL_MIN ? INT64_MAX : 0, gemv_blocks, &j);
  free(xp);
}

/* Half <-> float over whole arrays: blocks of 64K elements shared out on the pool (a prefill widens each half
 * weight matrix before its sgemm). */
#define HALF_BLOCK (1 << 16)
typedef struct {
  const uint16_t *h;
  const float *f;
  uint16_t *ho;
  float *fo;
} HalfArgs;

void kv_widen_halves(int64_t n, const uint16_t *src, float *dst) {
  int64_t i = 0;
#ifdef __AVX512F__
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
  for (; i < n; i++) dst[i] = kv_half_bits_to_float(src[i]);
}

void kv_narrow_floats(int64_t n, const float *src, uint16_t *dst) {
  int64_t i = 0;
#ifdef __AVX512F__
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; i++) dst[i] = float_to_half(src[i]);
}

static void half_range(void *arg, int64_t b, int64_t e) {
  HalfArgs *j = arg;
  if (j->fo) kv_widen_halves(e - b, j->h + b, j->fo + b);
  else kv_narrow_floats(e - b, j->f + b, j->ho + b);
}

void kv_half_to_float(int64_t n, const uint16_t *src, float *dst) {
  HalfArgs j = {.h = src, .fo = dst};
  kv_pool_for(n, HALF_BLOCK, 4 * HALF_BLOCK, half_range, &j);
}

static void bf16_range(void *arg, int64_t b, int64_t e) {
  HalfArgs *j = arg;
  int64_t i = b;
#ifdef __AVX2__
  for (; i + 8 <= e; i += 8)
    _mm256_storeu_si256((__m256i *)(j->fo + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(j->h + i))), 16));
#endif
  for (; i < e; i++) j->fo[i] = bf16_value(j->h[i]);
}

void kv_bf16_to_float(int64_t n, const uint16_t *src, float *dst) {
  HalfArgs j = {.h = src, .fo = dst};
  kv_pool_for(n, HALF_BLOCK, 4 * HALF_BLOCK, bf16_range, &j);
}

void kv_float_to_half(int64_t n, const float *src, uint16_t *dst) {
  HalfArgs j = {.f = src, .ho = dst};
  kv_pool_for(n, HALF_BLOCK, 4 * HALF_BLOCK, half_range, &j);
}
