/*
 * Y[m, n] (+)= X[m, k] . W[n, k]^T for block-quantized W: a prefill's products in integers (AVX-512 VNNI, or
 * AVX2's maddubs where there is no VNNI; the AVX2 section below says how it differs).
 *
 * Every block type is weight = a_g * u + c_g for unsigned 8-bit levels u and one (a, c) per group g of 32
 * weights (16 for Q6_K, whose scales are per 16): u is the stored level, lifted by the type's offset where the
 * level is signed (Q8_0 +128, Q4_0 +8, Q5_0 +16, Q6_K +32; c takes the offset back). X is quantized as a decode
 * row's activations are (8 bits, one scale xd per 32, sums per 16), so
 *   Y[i, j] = sum_g xd[i, g] * (a[j, g] * isum[i, j, g] + c[j, g] * xsum[i, g])
 * with isum the integer dot of group g: vpdpbusd sums 4 products of levels and activations into each int32 lane
 * (64 multiply-adds an instruction, 3.8x the float32 FMA's on the cores measured; docs/benchmarks.md; AVX2's
 * maddubs, 32 an instruction, ran at one a cycle on the Zen 3 measured: 1.7x its FMA's).
 *
 * Loops (AVX-512; AVX2 takes strips of 8 rows one at a time, 4 rows of X a register tile): W is cut into strips of 16 rows (the lanes of one vector); each pair of strips is decoded once into
 * packed buffers ([k/4][16 rows][4 levels], a and c as [groups][16]) that stay in L2 while every 12-row tile
 * of X streams past them, 6 rows at a time against both strips (two weight loads and six broadcasts feed twelve
 * vpdpbusd; 12 integer and 12 float accumulators in registers). X is quantized and packed once per call
 * ([k/4][12 rows][4 levels], per tile). Tiles of X, then pairs of strips, are shared out on the thread pool.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define HAVE_QGEMM 1
#define QG_VNNI 1
#define QG_NR 16 /* columns of Y a weight vector holds */
#define QG_MR2 6 /* rows of X a register tile takes */
#define QG_STRIPS 2
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_QGEMM 1
#define QG_NR 8
#define QG_MR2 4
#define QG_STRIPS 1
#endif

#define QG_MR 12 /* rows of X in a packed tile */

int kv_quant_gemm_available(void) {
#ifdef HAVE_QGEMM
  return 1;
#else
  return 0;
#endif
}

#ifdef HAVE_QGEMM
/* levels lifted to unsigned by kv_quant_level_offset (c takes the offset back); groups of 32, or 16 for Q6_K */
static int group_size(int type) { return type == KV_Q6_K ? 16 : 32; }

/* the types with an offset are those without a min (weight = a * (u - offset)): their take-back is integer */
static int symmetric(int type) { return kv_quant_level_offset(type) != 0; }

typedef struct {
  int type, n, k, m, ldy, accumulate, tiles;
  const uint8_t *w;
  const float *x;
  int8_t *xp;  /* [tiles][k/4][QG_MR][4] */
  float *xs;   /* [tiles][groups][QG_MR]: xd of the group's 32-block */
  float *xc;   /* [tiles][groups][QG_MR]: xd * the group's level sum (types with a min) */
  int32_t *xo; /* [tiles][groups][QG_MR]: -offset * the group's level sum (types without: the lift's take-back) */
  float *y;
} QGemmJob;

/* a register tile's rows of X: packed levels, their groups' factors, and where its rows of Y start */
typedef struct {
  const int8_t *xp;
  const float *xs, *xc;
  const int32_t *xo;
  float *y;
  int rows;
} TileRows;

/* Rows [n0, n0 + 16) of W decoded into the strip's levels ([k/4][16][4]), a and c (rows past n zero). */
static void pack_strip(const QGemmJob *j, int n0, uint8_t *lv, float *sa, float *sc) {
  const int k = j->k, type = j->type, bs = kv_quant_block_size(type), bb = kv_quant_block_bytes(type);
  const int gs = group_size(type), off = kv_quant_level_offset(type), groups = k / gs;
  const int64_t row_bytes = (int64_t)(k / bs) * bb;
  uint32_t u[64];
  float a[16], b[16];
  for (int r = 0; r < QG_NR; r++) {
    if (n0 + r >= j->n) {
      for (int t = 0; t < k / 4; t++) memset(lv + ((int64_t)t * QG_NR + r) * 4, 0, 4);
      for (int g = 0; g < groups; g++) sa[g * QG_NR + r] = sc[g * QG_NR + r] = 0.0f;
      continue;
    }
    const uint8_t *row = j->w + (int64_t)(n0 + r) * row_bytes;
    for (int blk = 0; blk < k / bs; blk++) {
      kv_quant_block_levels(type, row + (int64_t)blk * bb, u, a, b);
      const int k0 = blk * bs;
      for (int w = 0; w < bs / 4; w++) memcpy(lv + ((int64_t)(k0 / 4 + w) * QG_NR + r) * 4, u + w, 4);
      for (int g = 0; g < bs / gs; g++) {
        const float ag = a[g * gs / 16], bg = b[g * gs / 16];
        const int gi = k0 / gs + g;
        sa[gi * QG_NR + r] = ag;
        sc[gi * QG_NR + r] = bg - (float)off * ag;
      }
    }
  }
}

/* a packed tile's row r past m: levels and factors zero, so it adds nothing */
static void zero_row(int k, int groups, int r, int8_t *tp, float *xs, float *xc, int32_t *xo) {
  for (int s = 0; s < k / 4; s++) memset(tp + ((int64_t)s * QG_MR + r) * 4, 0, 4);
  for (int g = 0; g < groups; g++) xs[g * QG_MR + r] = xc[g * QG_MR + r] = 0.0f, xo[g * QG_MR + r] = 0;
}

#ifdef QG_VNNI
/* 6 rows of X against two strips (32 columns of Y): two W vectors a step, 24 accumulators. */
static inline __attribute__((always_inline)) void tile(const int gsteps, const int symmetric, int groups,
                                                      const int8_t *xp, const float *xs, const float *xc,
                                                      const int32_t *xo, const uint8_t *lv0, const uint8_t *lv1,
                                                      const float *sa0, const float *sc0, const float *sa1,
                                                      const float *sc1, float *y, int64_t ldy, int rows,
                                                      __mmask16 keep0, __mmask16 keep1, int accumulate) {
  __m512 acc0[QG_MR2], acc1[QG_MR2];
  for (int r = 0; r < QG_MR2; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int g = 0; g < groups; g++) {
    __m512i is0[QG_MR2], is1[QG_MR2];
    for (int r = 0; r < QG_MR2; r++)
      is0[r] = is1[r] = symmetric ? _mm512_set1_epi32(xo[g * QG_MR + r]) : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int t = 0; t < gsteps; t++) {
      const int64_t step = (int64_t)g * gsteps + t;
      const __m512i w0 = _mm512_load_si512(lv0 + step * 64), w1 = _mm512_load_si512(lv1 + step * 64);
      const int32_t *xr = (const int32_t *)(xp + step * 4 * QG_MR);
      for (int r = 0; r < QG_MR2; r++) {
        const __m512i xb = _mm512_set1_epi32(xr[r]);
        is0[r] = _mm512_dpbusd_epi32(is0[r], w0, xb);
        is1[r] = _mm512_dpbusd_epi32(is1[r], w1, xb);
      }
    }
    const __m512 a0 = _mm512_loadu_ps(sa0 + g * QG_NR), a1 = _mm512_loadu_ps(sa1 + g * QG_NR);
    const __m512 c0 = symmetric ? a0 : _mm512_loadu_ps(sc0 + g * QG_NR), c1 = symmetric ? a1 : _mm512_loadu_ps(sc1 + g * QG_NR);
    for (int r = 0; r < QG_MR2; r++) {
      const __m512 xsr = _mm512_set1_ps(xs[g * QG_MR + r]);
      acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is0[r]), _mm512_mul_ps(a0, xsr), acc0[r]);
      acc1[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is1[r]), _mm512_mul_ps(a1, xsr), acc1[r]);
      if (!symmetric) {
        const __m512 xcr = _mm512_set1_ps(xc[g * QG_MR + r]);
        acc0[r] = _mm512_fmadd_ps(c0, xcr, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(c1, xcr, acc1[r]);
      }
    }
  }
  for (int r = 0; r < QG_MR2; r++) {
    if (r >= rows) break;
    float *yr = y + r * ldy;
    _mm512_mask_storeu_ps(yr, keep0, accumulate ? _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(keep0, yr)) : acc0[r]);
    _mm512_mask_storeu_ps(yr + 16, keep1, accumulate ? _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(keep1, yr + 16)) : acc1[r]);
  }
}

/*
 * Rows of X tile by tile into 8-bit levels, packed [k/4][QG_MR][4] (rows past m zero), with their groups' xd and
 * xd * level sum: the same rounding as kv_quantize_activations (amax / 127, x * (1 / d), nearest even), in vectors.
 */
static void quantize_tiles(void *arg, int64_t t0, int64_t t1) {
  const QGemmJob *j = arg;
  const int k = j->k, gs = group_size(j->type), groups = k / gs;
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t t = t0; t < t1; t++) {
    int8_t *tp = j->xp + t * k * QG_MR;
    float *xs = j->xs + t * groups * QG_MR, *xc = j->xc + t * groups * QG_MR;
    int32_t *xo = j->xo + t * groups * QG_MR;
    const int off = kv_quant_level_offset(j->type);
    for (int r = 0; r < QG_MR; r++) {
      const int64_t i = t * QG_MR + r;
      if (i >= j->m) {
        zero_row(k, groups, r, tp, xs, xc, xo);
        continue;
      }
      const float *xr = j->x + i * k;
      for (int blk = 0; blk < k / 32; blk++) {
        const __m512 lo = _mm512_loadu_ps(xr + 32 * blk), hi = _mm512_loadu_ps(xr + 32 * blk + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(lo, sign), _mm512_and_ps(hi, sign)));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, _mm512_set1_ps(id)));
        const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, _mm512_set1_ps(id)));
        const int32_t s0 = _mm512_reduce_add_epi32(qlo), s1 = _mm512_reduce_add_epi32(qhi);
        int32_t packed[8];
        _mm_storeu_si128((__m128i *)packed, _mm512_cvtepi32_epi8(qlo));
        _mm_storeu_si128((__m128i *)(packed + 4), _mm512_cvtepi32_epi8(qhi));
        for (int e = 0; e < 8; e++) memcpy(tp + ((int64_t)(8 * blk + e) * QG_MR + r) * 4, packed + e, 4);
        if (gs == 32) {
          xs[blk * QG_MR + r] = d;
          xc[blk * QG_MR + r] = d * (float)(s0 + s1);
          xo[blk * QG_MR + r] = -off * (s0 + s1);
        } else {
          xs[2 * blk * QG_MR + r] = xs[(2 * blk + 1) * QG_MR + r] = d;
          xc[2 * blk * QG_MR + r] = d * (float)s0;
          xc[(2 * blk + 1) * QG_MR + r] = d * (float)s1;
          xo[2 * blk * QG_MR + r] = -off * s0;
          xo[(2 * blk + 1) * QG_MR + r] = -off * s1;
        }
      }
    }
  }
}

/* one register tile's rows of X against the pass's two strips */
static void run_tile(const QGemmJob *j, const TileRows *x, const uint8_t *lv, float *const *sa, float *const *sc,
                     const int *cols) {
  const int groups = j->k / group_size(j->type);
  const uint8_t *lv1 = lv + (int64_t)j->k * QG_NR;
  const __mmask16 keep0 = (__mmask16)((1u << cols[0]) - 1u), keep1 = (__mmask16)((1u << cols[1]) - 1u);
#define QG_TILE(gsteps, sym) \
  tile(gsteps, sym, groups, x->xp, x->xs, x->xc, x->xo, lv, lv1, sa[0], sc[0], sa[1], sc[1], x->y, j->ldy, x->rows, keep0, keep1, j->accumulate)
  if (group_size(j->type) == 16) QG_TILE(4, 1);
  else if (symmetric(j->type)) QG_TILE(8, 1);
  else QG_TILE(8, 0);
#undef QG_TILE
}
#else
/*
 * AVX2 has no vpdpbusd: maddubs multiplies unsigned levels by signed activations into 16-bit pair sums, which
 * add up in 16 bits for as many steps as cannot overflow (2 * top level * 127 a step), and madd with ones
 * widens them to the same 4-product int32 lanes. Q8_0's lifted levels reach 255, whose pair sums would
 * saturate, so its levels go back to signed and the sign moves onto the activations (|q| * sign(q) x).
 * Steps an int16 sum takes: Q8_0 1, Q6_K (levels to 63) 2, the 5-bit types 4, the 4-bit types 8.
 */
/* 4 rows of X against one strip (8 columns of Y) */
static inline __attribute__((always_inline)) void tile(const int gsteps, const int hsteps, const int symmetric,
                                                      const int signed8, int groups, const int8_t *xp,
                                                      const float *xs, const float *xc, const int32_t *xo,
                                                      const uint8_t *lv, const float *sa, const float *sc, float *y,
                                                      int64_t ldy, int rows, int cols, int accumulate) {
  const __m256i ones = _mm256_set1_epi16(1), lift = _mm256_set1_epi8((char)0x80);
  __m256 acc[QG_MR2];
  for (int r = 0; r < QG_MR2; r++) acc[r] = _mm256_setzero_ps();
  for (int g = 0; g < groups; g++) {
    __m256i is[QG_MR2];
    for (int r = 0; r < QG_MR2; r++)
      is[r] = symmetric && !signed8 ? _mm256_set1_epi32(xo[g * QG_MR + r]) : _mm256_setzero_si256();
    for (int h = 0; h < gsteps; h += hsteps) {
      __m256i s16[QG_MR2];
      for (int r = 0; r < QG_MR2; r++) s16[r] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int t = h; t < h + hsteps; t++) {
        const int64_t step = (int64_t)g * gsteps + t;
        const __m256i w = _mm256_load_si256((const __m256i *)(lv + step * 4 * QG_NR));
        const int32_t *xr = (const int32_t *)(xp + step * 4 * QG_MR);
        if (signed8) {
          const __m256i q = _mm256_xor_si256(w, lift), mag = _mm256_abs_epi8(q);
          for (int r = 0; r < QG_MR2; r++)
            s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(mag, _mm256_sign_epi8(_mm256_set1_epi32(xr[r]), q)));
        } else {
          for (int r = 0; r < QG_MR2; r++)
            s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(w, _mm256_set1_epi32(xr[r])));
        }
      }
      for (int r = 0; r < QG_MR2; r++) is[r] = _mm256_add_epi32(is[r], _mm256_madd_epi16(s16[r], ones));
    }
    const __m256 a = _mm256_loadu_ps(sa + g * QG_NR), c = symmetric ? a : _mm256_loadu_ps(sc + g * QG_NR);
    for (int r = 0; r < QG_MR2; r++) {
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[r]), _mm256_mul_ps(a, _mm256_set1_ps(xs[g * QG_MR + r])), acc[r]);
      if (!symmetric) acc[r] = _mm256_fmadd_ps(c, _mm256_set1_ps(xc[g * QG_MR + r]), acc[r]);
    }
  }
  for (int r = 0; r < QG_MR2 && r < rows; r++) {
    float *yr = y + r * ldy;
    if (cols == QG_NR) {
      _mm256_storeu_ps(yr, accumulate ? _mm256_add_ps(acc[r], _mm256_loadu_ps(yr)) : acc[r]);
    } else {
      float out[QG_NR];
      _mm256_storeu_ps(out, acc[r]);
      for (int c2 = 0; c2 < cols; c2++) yr[c2] = accumulate ? yr[c2] + out[c2] : out[c2];
    }
  }
}

/* Rows of X tile by tile through the decode's own quantizer, repacked [k/4][QG_MR][4] (rows past m zero). */
static void quantize_tiles(void *arg, int64_t t0, int64_t t1) {
  const QGemmJob *j = arg;
  const int k = j->k, gs = group_size(j->type), groups = k / gs, off = kv_quant_level_offset(j->type);
  int8_t *q = malloc((size_t)k);
  float *d = malloc(sizeof(float) * (size_t)(k / 32));
  int32_t *sums = malloc(sizeof(int32_t) * (size_t)(k / 16));
  if (!q || !d || !sums) abort(); /* k bytes and floats: the caller's buffers were far larger */
  /* Q8_0 runs on signed levels here, so its lift has nothing to take back */
  const int take_back = j->type == KV_Q8_0 ? 0 : off;
  for (int64_t t = t0; t < t1; t++) {
    int8_t *tp = j->xp + t * k * QG_MR;
    float *xs = j->xs + t * groups * QG_MR, *xc = j->xc + t * groups * QG_MR;
    int32_t *xo = j->xo + t * groups * QG_MR;
    for (int r = 0; r < QG_MR; r++) {
      const int64_t i = t * QG_MR + r;
      if (i >= j->m) {
        zero_row(k, groups, r, tp, xs, xc, xo);
        continue;
      }
      kv_quantize_activations(k, j->x + i * k, q, d, sums);
      for (int s = 0; s < k / 4; s++) memcpy(tp + ((int64_t)s * QG_MR + r) * 4, q + 4 * s, 4);
      for (int g = 0; g < groups; g++) {
        const int32_t sum = gs == 32 ? sums[2 * g] + sums[2 * g + 1] : sums[g];
        const float dg = d[g * gs / 32];
        xs[g * QG_MR + r] = dg;
        xc[g * QG_MR + r] = dg * (float)sum;
        xo[g * QG_MR + r] = -take_back * sum;
      }
    }
  }
  free(q), free(d), free(sums);
}

/* one register tile's rows of X against the pass's strip */
static void run_tile(const QGemmJob *j, const TileRows *x, const uint8_t *lv, float *const *sa, float *const *sc,
                     const int *cols) {
  const int type = j->type, groups = j->k / group_size(type), sym = symmetric(type);
  const int five = type == KV_Q5_0 || type == KV_Q5_1 || type == KV_Q5_K;
#define QG_TILE(gsteps, hsteps, sym, signed8) \
  tile(gsteps, hsteps, sym, signed8, groups, x->xp, x->xs, x->xc, x->xo, lv, sa[0], sc[0], x->y, j->ldy, x->rows, cols[0], j->accumulate)
  if (type == KV_Q8_0) QG_TILE(8, 1, 1, 1);
  else if (group_size(type) == 16) QG_TILE(4, 2, 1, 0);
  else if (five && sym) QG_TILE(8, 4, 1, 0);
  else if (five) QG_TILE(8, 4, 0, 0);
  else if (sym) QG_TILE(8, 8, 1, 0);
  else QG_TILE(8, 8, 0, 0);
#undef QG_TILE
}
#endif /* QG_VNNI */

static __thread uint8_t *strip_lv;
static __thread float *strip_s;
static __thread int64_t strip_cap;

/* Passes [s0, s1) over W, each QG_STRIPS strips of QG_NR rows (a strip past n is zeros, its columns unwritten). */
static void strips(void *arg, int64_t s0, int64_t s1) {
  const QGemmJob *j = arg;
  const int k = j->k, groups = k / group_size(j->type);
  const int64_t strip = (int64_t)k * QG_NR, per = (int64_t)(k / 16) * QG_NR; /* room for groups of 16 */
  if (QG_STRIPS * strip > strip_cap) {
    free(strip_lv);
    free(strip_s);
    strip_lv = aligned_alloc(64, (size_t)(QG_STRIPS * strip));
    strip_s = aligned_alloc(64, sizeof(float) * (size_t)(2 * QG_STRIPS * per));
    strip_cap = strip_lv && strip_s ? QG_STRIPS * strip : 0;
    if (!strip_cap) abort(); /* the caller checked the allocations' size; out of memory here is fatal */
  }
  float *sa[QG_STRIPS], *sc[QG_STRIPS];
  for (int q = 0; q < QG_STRIPS; q++) sa[q] = strip_s + 2 * q * per, sc[q] = sa[q] + (int64_t)groups * QG_NR;
  for (int64_t p = s0; p < s1; p++) {
    const int n0 = (int)p * QG_STRIPS * QG_NR;
    int cols[QG_STRIPS];
    for (int q = 0; q < QG_STRIPS; q++) {
      const int left = j->n - n0 - q * QG_NR;
      cols[q] = left <= 0 ? 0 : left < QG_NR ? left : QG_NR;
      pack_strip(j, n0 + q * QG_NR, strip_lv + q * strip, sa[q], sc[q]);
    }
    for (int t = 0; t < j->tiles; t++)
      for (int h = 0; h < QG_MR; h += QG_MR2) {
        const int rows = j->m - t * QG_MR - h;
        if (rows <= 0) break;
        const int64_t at = (int64_t)t * groups * QG_MR + h;
        const TileRows x = {.xp = j->xp + (int64_t)t * k * QG_MR + 4 * h, .xs = j->xs + at, .xc = j->xc + at,
                            .xo = j->xo + at, .y = j->y + ((int64_t)t * QG_MR + h) * j->ldy + n0,
                            .rows = rows < QG_MR2 ? rows : QG_MR2};
        run_tile(j, &x, strip_lv, sa, sc, cols);
      }
  }
}
#endif

int kv_quant_gemm(int type, const uint8_t *w, int n, int k, const float *x, int m, float *y, int ldy, int accumulate) {
#ifndef HAVE_QGEMM
  (void)type, (void)w, (void)n, (void)k, (void)x, (void)m, (void)y, (void)ldy, (void)accumulate;
  return -3;
#else
  if (m <= 0 || n <= 0) return 0;
  if (k % kv_quant_block_size(type) != 0 || k % 32 != 0) return -1;
  const int gs = group_size(type), groups = k / gs, tiles = (m + QG_MR - 1) / QG_MR;
  int8_t *xp = aligned_alloc(64, (size_t)tiles * k * QG_MR);
  float *xs = malloc(sizeof(float) * (size_t)tiles * groups * QG_MR * 2);
  int32_t *xo = malloc(sizeof(int32_t) * (size_t)tiles * groups * QG_MR);
  if (!xp || !xs || !xo) {
    free(xp), free(xs), free(xo);
    return -2;
  }
  float *xc = xs + (int64_t)tiles * groups * QG_MR;
  QGemmJob j = {.type = type, .n = n, .k = k, .m = m, .ldy = ldy, .accumulate = accumulate, .tiles = tiles,
                .w = w, .x = x, .xp = xp, .xs = xs, .xc = xc, .xo = xo, .y = y};
  kv_pool_for(tiles, 1, 0, quantize_tiles, &j);
  kv_pool_for((n + QG_STRIPS * QG_NR - 1) / (QG_STRIPS * QG_NR), 1, 0, strips, &j);
  free(xp), free(xs), free(xo);
  return 0;
#endif
}
