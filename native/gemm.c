/*
 * C[m, n] (+)= X[m, k] . W[n, k]^T for a linear layer's weights packed once at load (kv_pack_weights).
 *
 * OpenBLAS repacks both operands on every call (its figures against this kernel's: docs/benchmarks.md). The
 * weights never change, so they are packed at load into the layout the micro-kernel reads: strips of 32 output columns,
 * each stored k-major ([k][32], zero-padded past n). Per call only X is packed, once, on the thread pool ([k][12]
 * per tile of 12 rows; packing it again for every work item cost 5-10%).
 *
 * The loops are the usual ones (Goto/BLIS): a block of MC rows of packed X stays in L2; a strip's [kc][32] panel
 * is read by every tile of the block; the micro-kernel keeps a 12 x 32 tile of C in 24 zmm registers and does
 * 24 FMAs per 2 loads of W and 12 broadcasts of X. Work items (a block of rows times a group of strips) are
 * shared out on the thread pool.
 *
 * Parts (kv_sgemm_packed_parts): matrices that read the same X (a layer's q, k and v; its gate and up) are packed
 * back to back and computed in one pass, their strips numbered on from part to part, each writing its own C:
 * one packing of X instead of three, and work items that fill both threads (alone, k and v have 6 strips each).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
#include <immintrin.h>
#endif

#define MR 12
#define MC (8 * MR)
/* k is cut into equal blocks of at most this: a strip's panel (KC x 32 floats, 80 KB) stays in L2 beside X's block. */
#define KC_MAX 640
/* strips per work item: 256 columns */
#ifndef STRIPS_PER_ITEM
#define STRIPS_PER_ITEM 8
#endif
/* below this many FMAs one thread is faster than waking another */
#define PARALLEL_MIN_FMAS (1 << 21)

int64_t kv_packed_floats(int n, int k) { return (int64_t)((n + KV_PACK_NR - 1) / KV_PACK_NR) * KV_PACK_NR * k; }

typedef struct {
  const float *w;
  const uint16_t *wh; /* or half weights, into outh */
  int n, k;
  float *out;
  uint16_t *outh;
} PackArgs;

/* Strips [b, e): depth-major, so the stores run sequentially and each of the strip's 32 rows is read a cache
 * line at a time (the other loop order, row by row with strided stores, took 1.3 s for SmolLM2-135M). */
static void pack_strips(void *arg, int64_t b, int64_t e) {
  const PackArgs *a = arg;
  const int k = a->k;
  for (int64_t s = b; s < e; s++) {
    const int64_t r0 = s * KV_PACK_NR, at = s * k * KV_PACK_NR;
    const int cols = a->n - r0 < KV_PACK_NR ? (int)(a->n - r0) : KV_PACK_NR;
    for (int i = 0; i < k; i++) {
      int j = 0;
      if (a->wh) {
        uint16_t *p = a->outh + at + (int64_t)i * KV_PACK_NR;
        for (; j < cols; j++) p[j] = a->wh[(r0 + j) * k + i];
        for (; j < KV_PACK_NR; j++) p[j] = 0;
      } else {
        float *p = a->out + at + (int64_t)i * KV_PACK_NR;
        for (; j < cols; j++) p[j] = a->w[(r0 + j) * k + i];
        for (; j < KV_PACK_NR; j++) p[j] = 0.0f;
      }
    }
  }
}

void kv_pack_weights(const float *w, int n, int k, float *out) {
  PackArgs a = {.w = w, .n = n, .k = k, .out = out};
  kv_pool_for((n + KV_PACK_NR - 1) / KV_PACK_NR, 4, 8, pack_strips, &a);
}

void kv_pack_weights_half(const uint16_t *w, int n, int k, uint16_t *out) {
  PackArgs a = {.wh = w, .n = n, .k = k, .outh = out};
  kv_pool_for((n + KV_PACK_NR - 1) / KV_PACK_NR, 4, 8, pack_strips, &a);
}

/* rows (<= MR) rows of X from column k0, kc wide -> ap[kc][MR], zero rows past `rows` */
static void pack_x(const float *x, int64_t ldx, int rows, int kc, float *ap) {
  for (int i = 0; i < MR; i++) {
    const float *xi = x + (int64_t)i * ldx;
    if (i < rows) for (int t = 0; t < kc; t++) ap[t * MR + i] = xi[t];
    else for (int t = 0; t < kc; t++) ap[t * MR + i] = 0.0f;
  }
}

/* C tile [rows x cols] (+)= ap[kc][MR] . bp[kc][32], bp float32 or (half, a constant at each call) f16 bits */
static inline __attribute__((always_inline)) void micro_kernel(int kc, const float *ap, const void *bpv, const int half, float *c,
                                                              int64_t ldc, int rows, int cols, int add) {
  const float *bp = bpv;
  const uint16_t *bh = bpv;
#ifdef __AVX512F__
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int t = 0; t < kc; t++) {
    __m512 b0, b1;
    if (half) {
      b0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bh + t * KV_PACK_NR)));
      b1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bh + t * KV_PACK_NR + 16)));
    } else {
      b0 = _mm512_loadu_ps(bp + t * KV_PACK_NR);
      b1 = _mm512_loadu_ps(bp + t * KV_PACK_NR + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      const __m512 a = _mm512_set1_ps(ap[t * MR + i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1u);
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    if (i >= rows) break;
    float *ci = c + (int64_t)i * ldc;
    if (add) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(m0, ci));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, acc[i][0]);
    _mm512_mask_storeu_ps(ci + 16, m1, acc[i][1]);
  }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  /* AVX2 (16 ymm registers): the tile's 12 rows in four passes of 3, each a 3 x 32 tile in 12 registers, the
   * strip's 4 vectors reloaded per pass (from L1: the panel row is 128 bytes) */
  for (int i0 = 0; i0 < rows; i0 += 3) {
    __m256 acc[3][4];
    for (int i = 0; i < 3; i++)
      for (int v = 0; v < 4; v++) acc[i][v] = _mm256_setzero_ps();
    for (int t = 0; t < kc; t++) {
      __m256 b[4];
      for (int v = 0; v < 4; v++)
        b[v] = half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(bh + t * KV_PACK_NR + 8 * v))) : _mm256_loadu_ps(bp + t * KV_PACK_NR + 8 * v);
      for (int i = 0; i < 3; i++) {
        const __m256 a = _mm256_broadcast_ss(ap + t * MR + i0 + i);
        for (int v = 0; v < 4; v++) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
      }
    }
    for (int i = 0; i < 3 && i0 + i < rows; i++) {
      float *ci = c + (int64_t)(i0 + i) * ldc;
      if (cols == KV_PACK_NR) {
        for (int v = 0; v < 4; v++) _mm256_storeu_ps(ci + 8 * v, add ? _mm256_add_ps(acc[i][v], _mm256_loadu_ps(ci + 8 * v)) : acc[i][v]);
      } else {
        float tmp[KV_PACK_NR];
        for (int v = 0; v < 4; v++) _mm256_storeu_ps(tmp + 8 * v, acc[i][v]);
        for (int j = 0; j < cols; j++) ci[j] = add ? ci[j] + tmp[j] : tmp[j];
      }
    }
  }
#else
  float acc[MR][KV_PACK_NR];
  memset(acc, 0, sizeof acc);
  for (int t = 0; t < kc; t++)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < KV_PACK_NR; j++)
        acc[i][j] += ap[t * MR + i] * (half ? kv_half_bits_to_float(bh[t * KV_PACK_NR + j]) : bp[t * KV_PACK_NR + j]);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) c[(int64_t)i * ldc + j] = add ? c[(int64_t)i * ldc + j] + acc[i][j] : acc[i][j];
#endif
}

typedef struct {
  int m, k, accumulate, kc, strips, groups, items, tiles, parts, half;
  int64_t ldx;
  const float *x;
  const void *packed; /* float32, or f16 bits when half */
  float *xp; /* X packed: k block after k block ([k0 * tiles * MR] on), tile after tile, [kc][MR] each */
  /* output part p: columns n[p] into c[p] (row stride ldc[p]), from global strips [first[p], first[p + 1]) */
  int n[KV_GEMM_MAX_PARTS], first[KV_GEMM_MAX_PARTS + 1];
  float *c[KV_GEMM_MAX_PARTS];
  int64_t ldc[KV_GEMM_MAX_PARTS];
} GemmJob;

/* Packs tiles [b, e) of X for every k block. */
static void pack_tiles(void *arg, int64_t b, int64_t e) {
  const GemmJob *j = arg;
  for (int k0 = 0; k0 < j->k; k0 += j->kc) {
    const int kc = j->k - k0 < j->kc ? j->k - k0 : j->kc;
    for (int64_t t = b; t < e; t++) {
      const int r0 = (int)t * MR;
      pack_x(j->x + (int64_t)r0 * j->ldx + k0, j->ldx, j->m - r0 < MR ? j->m - r0 : MR, kc,
             j->xp + (int64_t)k0 * j->tiles * MR + t * MR * kc);
    }
  }
}

static void gemm_item(const GemmJob *j, int64_t item) {
  const int mb = (int)(item / j->groups), g = (int)(item % j->groups);
  const int m0 = mb * MC, mc = j->m - m0 < MC ? j->m - m0 : MC;
  const int s0 = g * STRIPS_PER_ITEM, s1 = s0 + STRIPS_PER_ITEM < j->strips ? s0 + STRIPS_PER_ITEM : j->strips;
  for (int k0 = 0; k0 < j->k; k0 += j->kc) {
    const int kc = j->k - k0 < j->kc ? j->k - k0 : j->kc;
    const float *xb = j->xp + (int64_t)k0 * j->tiles * MR + (int64_t)m0 * kc; /* this block's first tile */
    const int add = j->accumulate || k0 > 0;
    int p = 0;
    for (int s = s0; s < s1; s++) {
      while (s >= j->first[p + 1]) p++;
      const int ls = s - j->first[p]; /* the strip within its part */
      const int64_t at = ((int64_t)s * j->k + k0) * KV_PACK_NR;
      const int cols = j->n[p] - ls * KV_PACK_NR < KV_PACK_NR ? j->n[p] - ls * KV_PACK_NR : KV_PACK_NR;
      const int64_t ldc = j->ldc[p];
      float *cs = j->c[p] + (int64_t)m0 * ldc + ls * KV_PACK_NR;
      for (int i = 0; i < mc; i += MR) {
        const int rows = mc - i < MR ? mc - i : MR;
        if (j->half) micro_kernel(kc, xb + (int64_t)i * kc, (const uint16_t *)j->packed + at, 1, cs + (int64_t)i * ldc, ldc, rows, cols, add);
        else micro_kernel(kc, xb + (int64_t)i * kc, (const float *)j->packed + at, 0, cs + (int64_t)i * ldc, ldc, rows, cols, add);
      }
    }
  }
}

/* Work items [b, e). */
static void gemm_items(void *arg, int64_t b, int64_t e) {
  for (int64_t item = b; item < e; item++) gemm_item(arg, item);
}

/* X packed, grown as needed and kept (a prefill calls with the same shapes chunk after chunk); one call at a time */
static pthread_mutex_t x_packed_lock = PTHREAD_MUTEX_INITIALIZER;
static float *x_packed;
static int64_t x_packed_floats;

int kv_sgemm_packed_parts(int m, int k, const float *x, int64_t ldx, const void *packed, int half, int parts, const int *n,
                          float *const *c, const int64_t *ldc, int accumulate) {
  if (parts < 1 || parts > KV_GEMM_MAX_PARTS) return -2;
  GemmJob j = {.m = m, .k = k, .accumulate = accumulate, .ldx = ldx, .x = x, .packed = packed, .half = half, .parts = parts};
  for (int p = 0; p < parts; p++) {
    j.n[p] = n[p], j.c[p] = c[p], j.ldc[p] = ldc[p];
    j.first[p + 1] = j.first[p] + (n[p] + KV_PACK_NR - 1) / KV_PACK_NR;
  }
  j.strips = j.first[parts];
  if (m <= 0 || j.strips == 0) return 0;
  if (k == 0) {
    if (!accumulate)
      for (int p = 0; p < parts; p++)
        for (int i = 0; i < m; i++) memset(c[p] + (int64_t)i * ldc[p], 0, sizeof(float) * (size_t)n[p]);
    return 0;
  }
  const int kblocks = (k + KC_MAX - 1) / KC_MAX;
  j.kc = (k + kblocks - 1) / kblocks;
  j.tiles = (m + MR - 1) / MR;
  j.groups = (j.strips + STRIPS_PER_ITEM - 1) / STRIPS_PER_ITEM;
  j.items = ((m + MC - 1) / MC) * j.groups;
  const int64_t need = (int64_t)j.tiles * MR * k;
  pthread_mutex_lock(&x_packed_lock);
  if (need > x_packed_floats) {
    free(x_packed);
    x_packed = aligned_alloc(64, sizeof(float) * (size_t)((need + 15) / 16 * 16));
    x_packed_floats = x_packed ? need : 0;
    if (!x_packed) {
      pthread_mutex_unlock(&x_packed_lock);
      return -1;
    }
  }
  j.xp = x_packed;
  const int parallel = (int64_t)m * j.strips * KV_PACK_NR * k >= PARALLEL_MIN_FMAS;
  /* pack X on the pool (tiles of 12 rows), then the products, one work item at a time */
  kv_pool_for(j.tiles, 4, parallel ? 8 : INT64_MAX, pack_tiles, &j);
  kv_pool_for(j.items, 1, parallel ? 0 : INT64_MAX, gemm_items, &j);
  pthread_mutex_unlock(&x_packed_lock);
  return 0;
}
