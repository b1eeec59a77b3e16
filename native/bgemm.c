/*
 * Y[m, n] (+)= X[m, k] . W[n, k]^T for bfloat16 W (a bf16 model's matrices as stored): a prefill's products on
 * vdpbf16ps, which sums two bf16 products into each float32 lane (32 multiply-adds an instruction). X is
 * rounded to bf16 (nearest even) first, as llama.cpp does for bf16 weights; the sums stay float32.
 *
 * Only where it pays: Zen 5 runs vdpbf16ps at twice the FMA's multiply-adds, but the Xeon measured ran it at
 * half (docs/benchmarks.md), so kv_bf16_gemm_fast() times both once per process and the caller widens W for
 * the float32 product where the dot product is not the faster.
 *
 * Loops, as native/qgemm.c's: W is cut into strips of 16 rows (the lanes of one vector); each pair of strips is
 * repacked once into [k/2][16 rows][2 values] (each 32-bit lane a row's pair of consecutive k), which stays
 * in L2 while every 12-row tile of X, packed the same way ([k/2][12 rows][2]), streams past: two W loads and
 * twelve broadcasts feed 24 vdpbf16ps into 24 accumulators. Pairs of strips are shared out on the thread pool.
 * Parts: matrices that read the same X (a layer's q, k and v; gate and up) share its rounding and packing and one
 * pass of the pool, their pairs of strips numbered on from part to part.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#define HAVE_BGEMM 1
#endif

#define BG_NR 16 /* rows of W (columns of Y) a vector holds */
#define BG_MR 12 /* rows of X a tile takes */

#ifdef HAVE_BGEMM
typedef struct {
  int k2, m, accumulate, tiles, count;
  const KvBf16Part *parts; /* each W [n][2 * k2] bf16 bits, into its own y */
  int first[KV_GEMM_MAX_PARTS + 1]; /* part p's pairs of strips: [first[p], first[p + 1]) */
  const float *x;
  uint32_t *xp; /* [tiles][k2][BG_MR] */
} BGemmJob;

/* Rows of X tile by tile to bf16 pairs, [k2][BG_MR] per tile (rows past m zero). */
static void pack_x_tiles(void *arg, int64_t t0, int64_t t1) {
  const BGemmJob *j = arg;
  const int k2 = j->k2;
  uint32_t *row = aligned_alloc(64, sizeof(uint32_t) * (size_t)((k2 + 15) / 16 * 16));
  if (!row) abort(); /* k floats: far less than the caller's buffers */
  for (int64_t t = t0; t < t1; t++) {
    uint32_t *tp = j->xp + t * k2 * BG_MR;
    for (int r = 0; r < BG_MR; r++) {
      const int64_t i = t * BG_MR + r;
      if (i >= j->m) {
        for (int s = 0; s < k2; s++) tp[(int64_t)s * BG_MR + r] = 0;
        continue;
      }
      const float *xr = j->x + i * 2 * k2;
      int s = 0;
      for (; s + 16 <= k2; s += 16) {
        const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + 2 * s + 16), _mm512_loadu_ps(xr + 2 * s));
        _mm512_store_si512(row + s, (__m512i)b);
      }
      if (s < k2) {
        const __mmask16 keep = (__mmask16)((1u << (k2 - s)) - 1u);
        const __mmask16 lo = (__mmask16)(2 * (k2 - s) >= 16 ? 0xffff : (1u << (2 * (k2 - s))) - 1u);
        const __mmask16 hi = (__mmask16)(2 * (k2 - s) > 16 ? (1u << (2 * (k2 - s) - 16)) - 1u : 0);
        const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, xr + 2 * s + 16), _mm512_maskz_loadu_ps(lo, xr + 2 * s));
        _mm512_mask_storeu_epi32(row + s, keep, (__m512i)b);
      }
      for (s = 0; s < k2; s++) tp[(int64_t)s * BG_MR + r] = row[s];
    }
  }
  free(row);
}

/* Rows [n0, n0 + 16) of W as [k2][16] pairs (rows past n zero): one gather of the 16 rows' pair a step (the bits
 * may sit at any even address, a file's bytes; gathers take unaligned elements). */
static void pack_strip(const BGemmJob *j, const KvBf16Part *part, int n0, uint32_t *lv) {
  const int k2 = j->k2;
  const int live = part->n - n0; /* rows of W in this strip: none for the second strip of the last pair, at times */
  const __mmask16 keep = (__mmask16)(live >= BG_NR ? 0xffff : live <= 0 ? 0 : (1u << live) - 1u);
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(4 * k2));
  const char *base = (const char *)(part->w + (int64_t)n0 * 2 * k2);
  for (int s = 0; s < k2; s++) {
    const __m512i at = _mm512_add_epi32(rows, _mm512_set1_epi32(4 * s));
    _mm512_store_si512(lv + (int64_t)s * BG_NR, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), keep, at, base, 1));
  }
}

/* up to 12 rows of X (one packed tile) against two strips: 24 accumulators */
static inline __attribute__((always_inline)) void tile(int k2, const uint32_t *xp, const uint32_t *lv0, const uint32_t *lv1,
                                                      float *y, int64_t ldy, int rows, __mmask16 keep0, __mmask16 keep1,
                                                      int accumulate) {
  __m512 acc0[BG_MR], acc1[BG_MR];
  for (int r = 0; r < BG_MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int s = 0; s < k2; s++) {
    const __m512bh w0 = (__m512bh)_mm512_load_si512(lv0 + (int64_t)s * BG_NR);
    const __m512bh w1 = (__m512bh)_mm512_load_si512(lv1 + (int64_t)s * BG_NR);
    const uint32_t *xr = xp + (int64_t)s * BG_MR;
    for (int r = 0; r < BG_MR; r++) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32((int)xr[r]);
      acc0[r] = _mm512_dpbf16_ps(acc0[r], w0, xb);
      acc1[r] = _mm512_dpbf16_ps(acc1[r], w1, xb);
    }
  }
  for (int r = 0; r < BG_MR && r < rows; r++) {
    float *yr = y + r * ldy;
    _mm512_mask_storeu_ps(yr, keep0, accumulate ? _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(keep0, yr)) : acc0[r]);
    _mm512_mask_storeu_ps(yr + 16, keep1, accumulate ? _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(keep1, yr + 16)) : acc1[r]);
  }
}

static __thread uint32_t *strip_lv;
static __thread int64_t strip_cap;

/* Pairs of strips [p0, p1) (a strip past n is zeros, its columns unwritten). */
static void strip_pairs(void *arg, int64_t p0, int64_t p1) {
  const BGemmJob *j = arg;
  const int k2 = j->k2;
  const int64_t strip = (int64_t)k2 * BG_NR;
  if (2 * strip > strip_cap) {
    free(strip_lv);
    strip_lv = aligned_alloc(64, sizeof(uint32_t) * (size_t)(2 * strip));
    strip_cap = strip_lv ? 2 * strip : 0;
    if (!strip_cap) abort(); /* two strips of W: the caller's buffers were far larger */
  }
  int q = 0;
  for (int64_t p = p0; p < p1; p++) {
    while (p >= j->first[q + 1]) q++;
    const KvBf16Part *part = j->parts + q;
    const int n0 = (int)(p - j->first[q]) * 2 * BG_NR;
    const int left0 = part->n - n0, left1 = part->n - n0 - BG_NR;
    const __mmask16 keep0 = (__mmask16)(left0 >= BG_NR ? 0xffff : (1u << left0) - 1u);
    const __mmask16 keep1 = (__mmask16)(left1 >= BG_NR ? 0xffff : left1 <= 0 ? 0 : (1u << left1) - 1u);
    pack_strip(j, part, n0, strip_lv);
    pack_strip(j, part, n0 + BG_NR, strip_lv + strip);
    for (int t = 0; t < j->tiles; t++) {
      const int rows = j->m - t * BG_MR;
      tile(k2, j->xp + (int64_t)t * k2 * BG_MR, strip_lv, strip_lv + strip, part->y + (int64_t)t * BG_MR * part->ldy + n0,
           part->ldy, rows, keep0, keep1, j->accumulate);
    }
  }
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Seconds for `iters` steps of 12 independent chains: vdpbf16ps (32 multiply-adds each) or FMA (16). */
static double time_chains(int dot, long iters) {
  __m512 a[12];
  for (int c = 0; c < 12; c++) a[c] = _mm512_set1_ps((float)c * 1e-7f);
  const __m512bh p = (__m512bh)_mm512_set1_epi16(0x3f80), q = (__m512bh)_mm512_set1_epi16(0x3380);
  const __m512 m = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-8f);
  const double t0 = seconds();
  if (dot) {
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
      for (int c = 0; c < 12; c++) a[c] = _mm512_dpbf16_ps(a[c], p, q);
    }
  } else {
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
      for (int c = 0; c < 12; c++) a[c] = _mm512_fmadd_ps(a[c], m, b);
    }
  }
  const double t = seconds() - t0;
  float s = 0.0f;
  for (int c = 0; c < 12; c++) s += _mm512_reduce_add_ps(a[c]);
  volatile float sink = s;
  (void)sink;
  return t;
}
#endif

int kv_bf16_gemm_fast(void) {
#ifdef HAVE_BGEMM
  static int known = -1;
  /* KVEVICT_BF16_DOT=0|1 decides instead (the same rounding in every run, whatever the load while timing) */
  const char *env = known < 0 ? getenv("KVEVICT_BF16_DOT") : NULL;
  if (env && (env[0] == '0' || env[0] == '1') && env[1] == '\0') known = env[0] == '1';
  if (known < 0) {
    /* best of three, each about 0.3 ms of either instruction on a 3-5 GHz core */
    double dot = 1e9, fma = 1e9;
    for (int r = 0; r < 3; r++) {
      const double d = time_chains(1, 100000), f = time_chains(0, 100000);
      if (d < dot) dot = d;
      if (f < fma) fma = f;
    }
    /* multiply-adds per second: the dot product's 32 a step against the FMA's 16; it must win clearly */
    known = 32.0 / dot > 1.25 * (16.0 / fma);
  }
  return known;
#else
  return 0;
#endif
}

int kv_bf16_gemm(int count, const KvBf16Part *parts, int k, const float *x, int m, int accumulate) {
#ifndef HAVE_BGEMM
  (void)count, (void)parts, (void)k, (void)x, (void)m, (void)accumulate;
  return -3;
#else
  if (count < 1 || count > KV_GEMM_MAX_PARTS) return -4;
  if (m <= 0) return 0;
  if (k % 2 != 0) return -1;
  const int k2 = k / 2, tiles = (m + BG_MR - 1) / BG_MR;
  uint32_t *xp = aligned_alloc(64, sizeof(uint32_t) * (size_t)tiles * (size_t)((k2 * BG_MR + 15) / 16 * 16));
  if (!xp) return -2;
  BGemmJob j = {.k2 = k2, .m = m, .accumulate = accumulate, .tiles = tiles, .count = count, .parts = parts, .x = x, .xp = xp};
  for (int p = 0; p < count; p++) j.first[p + 1] = j.first[p] + (parts[p].n + 2 * BG_NR - 1) / (2 * BG_NR);
  /* X once for every part (q, k and v of a layer; gate and up) */
  kv_pool_for(tiles, 1, 0, pack_x_tiles, &j);
  kv_pool_for(j.first[count], 1, 0, strip_pairs, &j);
  free(xp);
  return 0;
#endif
}
