/*
 * Causal softmax attention of one GQA group against one KV head, on OpenBLAS.
 *
 * Prefill: blocks of query rows; the group's queries of a block are gathered into one [rows*group, d]
 * matrix, scored against the keys in chunks with sgemm, and the softmax runs online across chunks
 * (running max and sum per row, as in FlashAttention), so scratch stays O(block * chunk) for any context.
 * With AVX-512 and head_dim 64, the same blocks run on this file's own register-tiled loops instead of sgemm
 * (unit_block_fused: no packing of keys and values per chunk; about 15% faster than the sgemm path).
 * Keys are sorted by position, so the keys a row sees are a prefix: a block only touches the prefix up to
 * its largest query position, and masks per row only in the chunks past its smallest one.
 * Decode (one row): with AVX-512 (head_dim 64 or 128, groups up to 4), one pass over tiles of keys: the group's
 * scores of a tile (kept in L1), their softmax folded into a running max and sum, then one pass over the tile's
 * values; K and V are each read once, front to back, at memory speed. Other shapes: BLAS loops that also read
 * each key and value once for the whole group.
 *
 * An f16 cache (IEEE half keys and values) is widened as it is read: in registers on the decode path (half the
 * bytes to stream), chunk by chunk into per-thread scratch on the others.
 *
 * Parallelism: work units are (row block, key range) pairs run on the thread pool with single-threaded
 * BLAS calls inside (OpenBLAS's own threading costs more than it gains on these small products). When
 * there are fewer row blocks than threads, the visible keys are split into ranges whose partial softmax
 * results (max, sum, normalized output) are merged at the end.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define LANES 16
/* Below this many multiply-adds a call runs on one thread: waking helpers costs tens of microseconds. */
#define PARALLEL_MIN_MACS (1 << 21)
/* Keys times head_dim from which a decode row's keys are split across threads (K and V: 256 KB). */
#ifndef DECODE_SPLIT_MIN
#define DECODE_SPLIT_MIN (1 << 15)
#endif
/* A key range of a split gets at least this many keys. */
#define MIN_SPLIT_KEYS 256
/* Keys per decode tile: 512 keys of head_dim 64 are 128 KB, well inside L2. */
#define DECODE_TILE 512

#ifdef __AVX512F__
/* Keys per decode tile: the tile's scores (group x tile floats) stay in L1 between the K and the V pass. */
#define DECODE_TILE16 256

/* 16 floats of a cache row at element i: float32, or IEEE halves widened (HALF is a constant at each call). */
static inline __attribute__((always_inline)) __m512 load_row16(const int HALF, const void *rows, int64_t i) {
  if (HALF) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)rows + i)));
  return _mm512_loadu_ps((const float *)rows + i);
}

/*
 * One query row of G heads (head_dim 16 * D16) against keys [0, cnt): online softmax over tiles; each key and
 * value row is read once for the whole group. q is pre-scaled. Writes o[G][d] (unnormalized), max[G], sum[G].
 * Keys and values are float32, or halves when HALF.
 */
static inline __attribute__((always_inline)) void decode_row16(const int G, const int D16, const int HALF, const float *q,
                                                              const void *keys, const void *values, int cnt, float *o_out,
                                                              float *max_out, float *sum_out) {
  const int d = 16 * D16;
  __m512 qv[4][8], o[4][8];
  float m[4], l[4];
  float sc[4][DECODE_TILE16] __attribute__((aligned(64)));
  for (int h = 0; h < G; h++) {
    for (int v = 0; v < D16; v++) {
      qv[h][v] = _mm512_loadu_ps(q + h * d + 16 * v);
      o[h][v] = _mm512_setzero_ps();
    }
    m[h] = -INFINITY;
    l[h] = 0.0f;
  }
  for (int t0 = 0; t0 < cnt; t0 += DECODE_TILE16) {
    const int tc = cnt - t0 < DECODE_TILE16 ? cnt - t0 : DECODE_TILE16;
    const int64_t base = (int64_t)t0 * d;
    for (int t = 0; t < tc; t++) {
      __m512 kv[8];
      for (int v = 0; v < D16; v++) kv[v] = load_row16(HALF, keys, base + (int64_t)t * d + 16 * v);
      for (int h = 0; h < G; h++) {
        __m512 a = _mm512_mul_ps(qv[h][0], kv[0]);
        for (int v = 1; v < D16; v++) a = _mm512_fmadd_ps(qv[h][v], kv[v], a);
        sc[h][t] = _mm512_reduce_add_ps(a);
      }
    }
    const int tv = tc & ~15;
    const __mmask16 tail = (__mmask16)((1u << (tc & 15)) - 1u);
    for (int h = 0; h < G; h++) {
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int t = 0; t < tv; t += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(sc[h] + t));
      if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_load_ps(sc[h] + tv));
      const float tm = _mm512_reduce_max_ps(mx);
      const float nm = tm > m[h] ? tm : m[h];
      if (nm > m[h] && m[h] != -INFINITY) {
        const float corr = kv_expf(m[h] - nm);
        const __m512 c = _mm512_set1_ps(corr);
        for (int v = 0; v < D16; v++) o[h][v] = _mm512_mul_ps(o[h][v], c);
        l[h] *= corr;
      }
      m[h] = nm;
      const __m512 nmv = _mm512_set1_ps(nm);
      __m512 acc = _mm512_setzero_ps();
      for (int t = 0; t < tv; t += 16) {
        const __m512 e = kv_exp16(_mm512_sub_ps(_mm512_load_ps(sc[h] + t), nmv));
        _mm512_store_ps(sc[h] + t, e);
        acc = _mm512_add_ps(acc, e);
      }
      if (tail) {
        const __m512 e = _mm512_maskz_mov_ps(tail, kv_exp16(_mm512_sub_ps(_mm512_load_ps(sc[h] + tv), nmv)));
        _mm512_store_ps(sc[h] + tv, e);
        acc = _mm512_add_ps(acc, e);
      }
      l[h] += _mm512_reduce_add_ps(acc);
    }
    for (int t = 0; t < tc; t++) {
      __m512 vv[8];
      for (int v = 0; v < D16; v++) vv[v] = load_row16(HALF, values, base + (int64_t)t * d + 16 * v);
      for (int h = 0; h < G; h++) {
        const __m512 p = _mm512_set1_ps(sc[h][t]);
        for (int v = 0; v < D16; v++) o[h][v] = _mm512_fmadd_ps(p, vv[v], o[h][v]);
      }
    }
  }
  for (int h = 0; h < G; h++) {
    for (int v = 0; v < D16; v++) _mm512_storeu_ps(o_out + h * d + 16 * v, o[h][v]);
    max_out[h] = m[h];
    sum_out[h] = l[h];
  }
}

#define DECODE_CASE(G, D16)                                                                    \
  if (g == G && d16 == D16) {                                                                  \
    if (half) decode_row16(G, D16, 1, q, keys, values, cnt, o, max, sum);                      \
    else decode_row16(G, D16, 0, q, keys, values, cnt, o, max, sum);                           \
    return 1;                                                                                  \
  }

/* The vectorized decode for the common shapes (head_dim 64 or 128, groups up to 4); 0 when not covered. */
static int decode_fast(int g, int d, int half, const float *q, const void *keys, const void *values, int cnt, float *o,
                       float *max, float *sum) {
  const int d16 = d / 16;
  if (d % 16 != 0) return 0;
  DECODE_CASE(1, 4) DECODE_CASE(2, 4) DECODE_CASE(3, 4) DECODE_CASE(4, 4)
  DECODE_CASE(1, 8) DECODE_CASE(2, 8) DECODE_CASE(3, 8) DECODE_CASE(4, 8)
  return 0;
}
#endif

/* Per thread, for the life of the thread: an f16 cache's keys (0) and values (1) of one chunk or tile, widened (a
 * buffer per call would be mapped and faulted in again at every decode step). */
static __thread float *widened[2];
static __thread size_t widened_cap[2];

/* n halves widened into the thread's buffer `which` (at least `cap` floats); NULL when it could not be allocated. */
static float *widen_rows(int which, const uint16_t *src, int64_t n, size_t cap) {
  if (widened_cap[which] < cap) {
    free(widened[which]);
    widened[which] = malloc(sizeof(float) * cap);
    widened_cap[which] = widened[which] ? cap : 0;
    if (!widened[which]) return NULL;
  }
  kv_widen_halves(n, src, widened[which]);
  return widened[which];
}

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define KV_DECODE_AVX2 1
/* Keys per AVX2 decode tile: the group's scores (8 x 256 floats) and the tile's rows stay in L1/L2 while each
 * head of the group reads them. */
#define DECODE_TILE8 256
#define DECODE_MAX_GROUP8 8
/* bytes the f16 decode fetches ahead of the key or value row in use (the hardware prefetcher alone does not keep
 * the halves streaming at memory speed) */
#define DECODE_HALF_AHEAD 2048

/* The sums of four vectors' lanes: {sum a, sum b, sum c, sum d}. */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/*
 * decode_row16 on AVX2 (Zen 2-4, Intel before AVX-512): one query row of G heads (head_dim 8 * D8) against keys
 * [0, cnt), tile by tile. Sixteen vector registers cannot hold a whole group, so each head in turn scores the
 * tile (four keys per horizontal reduction) and adds its weighted values; the tile is read from memory once and
 * from cache by the group's other heads. Float32 keys and values (an f16 cache: decode_half8). q is pre-scaled;
 * writes o[G][d] (unnormalized), max[G], sum[G].
 */
static inline __attribute__((always_inline)) void decode_row8(const int D8, const int G, const float *q, const float *keys,
                                                             const float *values, int cnt, float *o_out, float *max_out,
                                                             float *sum_out) {
  const int d = 8 * D8;
  float sc[DECODE_TILE8 + 4] __attribute__((aligned(32)));
  for (int h = 0; h < G; h++) {
    memset(o_out + h * d, 0, sizeof(float) * d);
    max_out[h] = -INFINITY;
    sum_out[h] = 0.0f;
  }
  for (int t0 = 0; t0 < cnt; t0 += DECODE_TILE8) {
    const int tc = cnt - t0 < DECODE_TILE8 ? cnt - t0 : DECODE_TILE8;
    const float *kt = keys + (int64_t)t0 * d, *vt = values + (int64_t)t0 * d;
    for (int h = 0; h < G; h++) {
      const float *qh = q + h * d;
      int t = 0;
      for (; t + 4 <= tc; t += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *r = kt + (int64_t)t * d;
        for (int v = 0; v < D8; v++) {
          const __m256 qv = _mm256_loadu_ps(qh + 8 * v);
          a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + 8 * v), a0);
          a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + d + 8 * v), a1);
          a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + 2 * d + 8 * v), a2);
          a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + 3 * d + 8 * v), a3);
        }
        _mm_storeu_ps(sc + t, hsum4(a0, a1, a2, a3));
      }
      for (; t < tc; t++) {
        __m256 a = _mm256_setzero_ps();
        for (int v = 0; v < D8; v++) a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + 8 * v), _mm256_loadu_ps(kt + (int64_t)t * d + 8 * v), a);
        sc[t] = _mm_cvtss_f32(hsum4(a, a, a, a));
      }
      /* online softmax across tiles: rescale what earlier tiles added when the max rises */
      const float tm = kv_row_max(sc, tc);
      const float old = max_out[h], nm = tm > old ? tm : old;
      if (nm > old && old != -INFINITY) {
        const float corr = kv_expf(old - nm);
        for (int i = 0; i < d; i++) o_out[h * d + i] *= corr;
        sum_out[h] *= corr;
      }
      max_out[h] = nm;
      sum_out[h] += kv_exp_shift_sum(sc, tc, nm);
      __m256 o[16];
      for (int v = 0; v < D8; v++) o[v] = _mm256_loadu_ps(o_out + h * d + 8 * v);
      for (int u = 0; u < tc; u++) {
        const __m256 p = _mm256_set1_ps(sc[u]);
        for (int v = 0; v < D8; v++) o[v] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + (int64_t)u * d + 8 * v), o[v]);
      }
      for (int v = 0; v < D8; v++) _mm256_storeu_ps(o_out + h * d + 8 * v, o[v]);
    }
  }
}

/*
 * decode_row8 for an f16 cache, widening each half once in registers (F16C) and using it for every head of the
 * group: keys row by row, each head's dot product in its own accumulator (reduced four keys at a time); values
 * 8 columns at a time, the group's 8 outputs of those columns in registers across the tile. Widening a tile into
 * memory first and reading it back once per head measured about half as fast on Zen 3 (the conversions, stores
 * and reloads, not the halves' bytes, bounded it).
 */
static inline __attribute__((always_inline)) void decode_half8(const int D8, const int G, const float *q, const uint16_t *keys,
                                                              const uint16_t *values, int cnt, float *o_out, float *max_out,
                                                              float *sum_out) {
  const int d = 8 * D8;
  float sc[DECODE_MAX_GROUP8][DECODE_TILE8] __attribute__((aligned(32)));
  __m256 part[DECODE_MAX_GROUP8][4];
  for (int h = 0; h < G; h++) {
    memset(o_out + h * d, 0, sizeof(float) * d);
    max_out[h] = -INFINITY;
    sum_out[h] = 0.0f;
  }
  for (int t0 = 0; t0 < cnt; t0 += DECODE_TILE8) {
    const int tc = cnt - t0 < DECODE_TILE8 ? cnt - t0 : DECODE_TILE8;
    const uint16_t *kt = keys + (int64_t)t0 * d, *vt = values + (int64_t)t0 * d;
    for (int t = 0; t < tc; t++) {
      __m256 acc[DECODE_MAX_GROUP8];
      for (int h = 0; h < G; h++) acc[h] = _mm256_setzero_ps();
      for (int c = 0; c < 2 * d; c += 64) _mm_prefetch((const char *)(kt + (int64_t)t * d) + DECODE_HALF_AHEAD + c, _MM_HINT_T0);
      for (int v = 0; v < D8; v++) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kt + (int64_t)t * d + 8 * v)));
        for (int h = 0; h < G; h++) acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * d + 8 * v), kv, acc[h]);
      }
      for (int h = 0; h < G; h++) part[h][t & 3] = acc[h];
      if ((t & 3) == 3)
        for (int h = 0; h < G; h++) _mm_storeu_ps(sc[h] + t - 3, hsum4(part[h][0], part[h][1], part[h][2], part[h][3]));
    }
    for (int t = tc & ~3; t < tc; t++)
      for (int h = 0; h < G; h++) sc[h][t] = _mm_cvtss_f32(hsum4(part[h][t & 3], part[h][t & 3], part[h][t & 3], part[h][t & 3]));
    for (int h = 0; h < G; h++) {
      const float tm = kv_row_max(sc[h], tc);
      const float old = max_out[h], nm = tm > old ? tm : old;
      if (nm > old && old != -INFINITY) {
        const float corr = kv_expf(old - nm);
        for (int i = 0; i < d; i++) o_out[h * d + i] *= corr;
        sum_out[h] *= corr;
      }
      max_out[h] = nm;
      sum_out[h] += kv_exp_shift_sum(sc[h], tc, nm);
    }
    /* VB column blocks at a time: G * VB independent sums (one block of a group of 3 would leave three chains,
     * each waiting out the FMA's latency) */
    const int VB = G == 1 ? 8 : G == 2 ? 4 : G <= 4 ? 2 : 1;
    for (int v0 = 0; v0 < D8; v0 += VB) {
      __m256 o[DECODE_MAX_GROUP8][8];
      for (int h = 0; h < G; h++)
        for (int j = 0; j < VB; j++) o[h][j] = _mm256_loadu_ps(o_out + h * d + 8 * (v0 + j));
      for (int u = 0; u < tc; u++) {
        const uint16_t *r = vt + (int64_t)u * d + 8 * v0;
        if (v0 == 0)
          for (int c = 0; c < 2 * d; c += 64) _mm_prefetch((const char *)r + DECODE_HALF_AHEAD + c, _MM_HINT_T0);
        for (int j = 0; j < VB; j++) {
          const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + 8 * j)));
          for (int h = 0; h < G; h++) o[h][j] = _mm256_fmadd_ps(_mm256_broadcast_ss(sc[h] + u), vv, o[h][j]);
        }
      }
      for (int h = 0; h < G; h++)
        for (int j = 0; j < VB; j++) _mm256_storeu_ps(o_out + h * d + 8 * (v0 + j), o[h][j]);
    }
  }
}

#define DECODE_HALF_CASE(G)                                                                  \
  case G:                                                                                    \
    if (d == 64) decode_half8(8, G, q, keys, values, cnt, o, max, sum);                      \
    else decode_half8(16, G, q, keys, values, cnt, o, max, sum);                             \
    return 1;

/* The AVX2 decode for head_dim 64 or 128 and groups up to 8: 1 when done, 0 when not covered. */
static int decode_fast(int g, int d, int half, const float *q, const void *keys, const void *values, int cnt, float *o,
                       float *max, float *sum) {
  if (g > DECODE_MAX_GROUP8 || (d != 64 && d != 128)) return 0;
  if (half) switch (g) {
      DECODE_HALF_CASE(1) DECODE_HALF_CASE(2) DECODE_HALF_CASE(3) DECODE_HALF_CASE(4)
      DECODE_HALF_CASE(5) DECODE_HALF_CASE(6) DECODE_HALF_CASE(7) DECODE_HALF_CASE(8)
    }
  if (d == 64) decode_row8(8, g, q, keys, values, cnt, o, max, sum);
  else decode_row8(16, g, q, keys, values, cnt, o, max, sum);
  return 1;
}
#endif

/* Number of keys whose position is <= p. */
static int visible_prefix(const int32_t *k_pos, int n, int32_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (int)(((unsigned)lo + (unsigned)hi) >> 1);
    if (k_pos[mid] <= p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

float kv_row_max(const float *s, int n) {
#ifdef __AVX512F__
  __m512 a = _mm512_set1_ps(-INFINITY), b = a;
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    a = _mm512_max_ps(a, _mm512_loadu_ps(s + j));
    b = _mm512_max_ps(b, _mm512_loadu_ps(s + j + 16));
  }
  for (; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
    a = _mm512_mask_max_ps(a, m, a, _mm512_maskz_loadu_ps(m, s + j));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(a, b));
#elif defined(KV_HAVE_EXP8)
  __m256 a = _mm256_set1_ps(-INFINITY), b = a;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    a = _mm256_max_ps(a, _mm256_loadu_ps(s + j));
    b = _mm256_max_ps(b, _mm256_loadu_ps(s + j + 8));
  }
  a = _mm256_max_ps(a, b);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  float m = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
#else
  float acc[LANES];
  for (int l = 0; l < LANES; l++) acc[l] = -INFINITY;
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) acc[l] = s[j + l] > acc[l] ? s[j + l] : acc[l];
  float m = -INFINITY;
  for (int l = 0; l < LANES; l++) m = acc[l] > m ? acc[l] : m;
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
#endif
}

/* s[j] = exp(s[j] - m) for j < n; returns the sum. */
float kv_exp_shift_sum(float *s, int n, float m) {
#ifdef __AVX512F__
  const __m512 mv = _mm512_set1_ps(m);
  __m512 a = _mm512_setzero_ps(), b = a;
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 e0 = kv_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
    const __m512 e1 = kv_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j + 16), mv));
    _mm512_storeu_ps(s + j, e0);
    _mm512_storeu_ps(s + j + 16, e1);
    a = _mm512_add_ps(a, e0);
    b = _mm512_add_ps(b, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(k, kv_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mv)));
    _mm512_mask_storeu_ps(s + j, k, e);
    a = _mm512_add_ps(a, e);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
#elif defined(KV_HAVE_EXP8)
  const __m256 mv = _mm256_set1_ps(m);
  __m256 a = _mm256_setzero_ps(), b = a;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 e0 = kv_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
    const __m256 e1 = kv_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), mv));
    _mm256_storeu_ps(s + j, e0);
    _mm256_storeu_ps(s + j + 8, e1);
    a = _mm256_add_ps(a, e0);
    b = _mm256_add_ps(b, e1);
  }
  float sum = kv_hsum8(_mm256_add_ps(a, b));
  for (; j < n; j++) {
    const float e = kv_expf(s[j] - m);
    s[j] = e;
    sum += e;
  }
  return sum;
#else
  float acc[LANES] = {0};
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) {
      float e = kv_expf(s[j + l] - m);
      s[j + l] = e;
      acc[l] += e;
    }
  float sum = 0.0f;
  for (int l = 0; l < LANES; l++) sum += acc[l];
  for (; j < n; j++) {
    float e = kv_expf(s[j] - m);
    s[j] = e;
    sum += e;
  }
  return sum;
#endif
}

typedef struct {
  const float *q;
  int64_t stride, head_off;
  float *out;
  int rows, d, group;
  const int32_t *q_pos;
  const void *keys, *values; /* float32, or IEEE halves when half */
  int half;
  const int32_t *k_pos;
  int n;
  float scale;
  int rb, nblocks, splits, units;
  /* splits > 1: per unit, rb*group records of d output floats (normalized), then max and sum */
  float *part;
  atomic_int next, done;
} Job;

/* Per-thread scratch, allocated on first use. */
typedef struct {
  float *qb, *ob, *sc, *run_max, *run_sum, *scores;
  int *vis;
  size_t scores_cap;
  float *fused; /* unit_block_fused's buffers */
} Scratch;

/* The most rows any path widens at once: a BLAS chunk, a decode tile or a fused chunk. */
#define WIDEN_ROWS (KV_ATTEND_KEY_CHUNK > DECODE_TILE ? KV_ATTEND_KEY_CHUNK : DECODE_TILE)

/* Cache rows [first, first + count) of keys (which 0) or values (1) as float32: the cache itself, or (an f16
 * cache) widened into the thread's buffer; NULL when that buffer could not be allocated. */
static const float *cache_rows(const Job *j, int which, int64_t first, int count) {
  const void *base = which ? j->values : j->keys;
  if (!j->half) return (const float *)base + first * j->d;
  return widen_rows(which, (const uint16_t *)base + first * j->d, (int64_t)count * j->d, (size_t)WIDEN_ROWS * (size_t)j->d);
}

static int scratch_blocked(const Job *j, Scratch *s) {
  if (s->qb) return 0;
  size_t m = (size_t)j->rb * j->group;
  s->qb = malloc(sizeof(float) * m * j->d);
  s->ob = malloc(sizeof(float) * m * j->d);
  s->sc = malloc(sizeof(float) * m * KV_ATTEND_KEY_CHUNK);
  s->run_max = malloc(sizeof(float) * m);
  s->run_sum = malloc(sizeof(float) * m);
  s->vis = malloc(sizeof(int) * (size_t)j->rb);
  return s->qb && s->ob && s->sc && s->run_max && s->run_sum && s->vis ? 0 : -1;
}

static void scratch_free(Scratch *s) {
  free(s->qb);
  free(s->ob);
  free(s->sc);
  free(s->run_max);
  free(s->run_sum);
  free(s->scores);
  free(s->vis);
  free(s->fused);
}

/* Result of a unit for group row m (block-local): written to out when the keys are not split, else to part. */
static void emit(const Job *j, int unit, int r0, int m, const float *o, float max, float sum) {
  const int d = j->d;
  if (j->splits == 1) {
    float *dst = j->out + (int64_t)(r0 + m / j->group) * j->stride + j->head_off + (int64_t)(m % j->group) * d;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int t = 0; t < d; t++) dst[t] = o[t] * inv;
    return;
  }
  float *rec = j->part + ((size_t)unit * j->rb * j->group + m) * (d + 2);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int t = 0; t < d; t++) rec[t] = o[t] * inv;
  rec[d] = max;
  rec[d + 1] = sum;
}

/* One query row against keys [lo, hi): scores for the whole group in one pass over K, one pass over V. */
static int unit_one_row(const Job *j, Scratch *s, int unit, int lo, int hi) {
  const int d = j->d, g = j->group, cnt = hi > lo ? hi - lo : 0;
  const float *q = j->q + j->head_off;
#if defined(__AVX512F__) || defined(KV_DECODE_AVX2)
  if (cnt > 0 && g <= 8 && d <= 128) {
    float qs[8 * 128] __attribute__((aligned(64))), o[8 * 128] __attribute__((aligned(64))), max[8], sum[8];
    for (int i = 0; i < g * d; i++) qs[i] = q[i] * j->scale;
    const int64_t off = (int64_t)lo * d * (j->half ? 2 : 4);
    if (decode_fast(g, d, j->half, qs, (const char *)j->keys + off, (const char *)j->values + off, cnt, o, max, sum)) {
      for (int h = 0; h < g; h++) emit(j, unit, 0, h, o + h * d, max[h], sum[h]);
      return 0;
    }
  }
#endif
  /* scores [g, cnt], then outputs [g, d], then max and sum [g] */
  const size_t need = (size_t)g * cnt + (size_t)g * d + 2 * (size_t)g;
  if (s->scores_cap < need) {
    free(s->scores);
    s->scores = malloc(sizeof(float) * need);
    s->scores_cap = s->scores ? need : 0;
    if (!s->scores) return -1;
  }
  float *sc = s->scores, *o = sc + (size_t)g * cnt, *max = o + (size_t)g * d, *sum = max + g;
  memset(o, 0, sizeof(float) * (size_t)g * d);
  if (cnt == 0) {
    for (int h = 0; h < g; h++) emit(j, unit, 0, h, o, -INFINITY, 0.0f);
    return 0;
  }
  /* tiles of keys stay in L2 while each head of the group reads them: K and V come from memory once */
  for (int t0 = 0; t0 < cnt; t0 += DECODE_TILE) {
    const int tc = cnt - t0 < DECODE_TILE ? cnt - t0 : DECODE_TILE;
    const float *kt = cache_rows(j, 0, lo + t0, tc);
    if (!kt) return -1;
    for (int h = 0; h < g; h++)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, tc, d, j->scale, kt, d, q + (int64_t)h * d, 1, 0.0f, sc + (size_t)h * cnt + t0, 1);
  }
  for (int h = 0; h < g; h++) {
    max[h] = kv_row_max(sc + (size_t)h * cnt, cnt);
    sum[h] = kv_exp_shift_sum(sc + (size_t)h * cnt, cnt, max[h]);
  }
  /* O[g, d] = P[g, cnt] . V[cnt, d]: one pass over V for the whole group */
  for (int t0 = 0; t0 < cnt; t0 += DECODE_TILE) {
    const int tc = cnt - t0 < DECODE_TILE ? cnt - t0 : DECODE_TILE;
    const float *vt = cache_rows(j, 1, lo + t0, tc);
    if (!vt) return -1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g, d, tc, 1.0f, sc + t0, cnt, vt, d, t0 == 0 ? 0.0f : 1.0f, o, d);
  }
  for (int h = 0; h < g; h++) emit(j, unit, 0, h, o + (size_t)h * d, max[h], sum[h]);
  return 0;
}

/* A block of query rows against keys [lo, hi) (each row only up to what it sees), chunk by chunk. */
static int unit_block(const Job *j, Scratch *s, int unit, int r0, int br, int lo, int hi, int n_all) {
  if (scratch_blocked(j, s) != 0) return -1;
  const int d = j->d, g = j->group, m_rows = br * g;
  const size_t gd = (size_t)g * d;
  for (int i = 0; i < br; i++) {
    memcpy(s->qb + (size_t)i * gd, j->q + (int64_t)(r0 + i) * j->stride + j->head_off, sizeof(float) * gd);
    s->vis[i] = hi > n_all ? visible_prefix(j->k_pos, hi, j->q_pos[r0 + i]) : hi;
  }
  for (int m = 0; m < m_rows; m++) {
    s->run_max[m] = -INFINITY;
    s->run_sum[m] = 0.0f;
  }
  if (hi <= lo) memset(s->ob, 0, sizeof(float) * (size_t)m_rows * d);
  for (int c0 = lo; c0 < hi; c0 += KV_ATTEND_KEY_CHUNK) {
    const int kc = hi - c0 < KV_ATTEND_KEY_CHUNK ? hi - c0 : KV_ATTEND_KEY_CHUNK;
    const float *kt = cache_rows(j, 0, c0, kc), *vt = cache_rows(j, 1, c0, kc);
    if (!kt || !vt) return -1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m_rows, kc, d, j->scale, s->qb, d, kt, d, 0.0f, s->sc, kc);
    for (int m = 0; m < m_rows; m++) {
      float *row = s->sc + (size_t)m * kc;
      int cnt = s->vis[m / g] - c0;
      if (cnt > kc) cnt = kc;
      if (cnt <= 0) {
        memset(row, 0, sizeof(float) * (size_t)kc);
        continue;
      }
      const float old = s->run_max[m];
      const float cm = kv_row_max(row, cnt);
      const float nm = cm > old ? cm : old;
      const float sum = kv_exp_shift_sum(row, cnt, nm);
      if (cnt < kc) memset(row + cnt, 0, sizeof(float) * (size_t)(kc - cnt));
      if (old == -INFINITY) {
        /* a row sees a prefix, so this is its first chunk: ob is overwritten below */
        s->run_sum[m] = sum;
      } else {
        const float corr = kv_expf(old - nm);
        s->run_sum[m] = s->run_sum[m] * corr + sum;
        if (corr != 1.0f) {
          float *o = s->ob + (size_t)m * d;
          for (int t = 0; t < d; t++) o[t] *= corr;
        }
      }
      s->run_max[m] = nm;
    }
    /* the first chunk overwrites ob; rows that see nothing in it get zero weights */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m_rows, d, kc, 1.0f, s->sc, kc, vt, d, c0 == lo ? 0.0f : 1.0f,
                s->ob, d);
  }
  for (int m = 0; m < m_rows; m++) emit(j, unit, r0, m, s->ob + (size_t)m * d, s->run_max[m], s->run_sum[m]);
  return 0;
}

#if defined(__AVX512F__) && !defined(KV_NO_FUSED)
/*
 * The prefill block for head_dim 64 without BLAS: scores are computed key-major, S^T[c][m] = K[c] . q[m], against
 * the block's queries transposed once (QT[64][M], pre-scaled), so keys and values are used in place (no packing
 * per chunk) and the online softmax runs across 16 queries per vector. O[m] += sum_c P^T[c][m] V[c] with values
 * read row by row. Register tiles: 6 keys x 32 queries for the scores, 6 queries x 64 outputs for P V.
 */
#define FUSED_KEYS 256
#define FUSED_MAX_M 256

/* exp(x) for x <= 0, a softmax's shifted scores: kv_exp16 with one clamp instead of its three range checks (below
 * -87.3 it gives exp(-87.3), about 1e-38, instead of 0: nothing a sum of at least 1 can tell). */
static inline __m512 exp16_nonpos(__m512 x) {
  return kv_exp16_in_range(_mm512_max_ps(x, _mm512_set1_ps(KV_EXP16_LO)), (__mmask16)0xffff);
}

/* S^T rows c .. c+R-1, queries m0 .. m0+16*Q-1 */
static inline __attribute__((always_inline)) void fused_scores(const int R, const int Q, const float *k, const float *qt,
                                                              int mp, float *st) {
  __m512 a[6][2];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < Q; v++) a[r][v] = _mm512_setzero_ps();
  for (int dd = 0; dd < 64; dd++) {
    __m512 qv[2];
    for (int v = 0; v < Q; v++) qv[v] = _mm512_load_ps(qt + (size_t)dd * mp + 16 * v);
    for (int r = 0; r < R; r++) {
      const __m512 kb = _mm512_set1_ps(k[r * 64 + dd]);
      for (int v = 0; v < Q; v++) a[r][v] = _mm512_fmadd_ps(kb, qv[v], a[r][v]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < Q; v++) _mm512_store_ps(st + (size_t)r * mp + 16 * v, a[r][v]);
}

/* O rows m0 .. m0+R-1 += sum over keys c0 .. c1-1 of P^T[c][m] V[c] */
static inline __attribute__((always_inline)) void fused_pv(const int R, const float *st, int mp, int m0, const float *v,
                                                          int c0, int c1, float *o) {
  __m512 a[6][4];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < 4; t++) a[r][t] = _mm512_load_ps(o + (size_t)(m0 + r) * 64 + 16 * t);
  for (int c = c0; c < c1; c++) {
    __m512 vv[4];
    for (int t = 0; t < 4; t++) vv[t] = _mm512_loadu_ps(v + (size_t)c * 64 + 16 * t);
    const float *p = st + (size_t)c * mp + m0;
    for (int r = 0; r < R; r++) {
      const __m512 pb = _mm512_set1_ps(p[r]);
      for (int t = 0; t < 4; t++) a[r][t] = _mm512_fmadd_ps(pb, vv[t], a[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < 4; t++) _mm512_store_ps(o + (size_t)(m0 + r) * 64 + 16 * t, a[r][t]);
}

static int unit_block_fused(const Job *j, Scratch *s, int unit, int r0, int br, int lo, int hi, int n_all) {
  const int g = j->group, m_rows = br * g, mp = (m_rows + 31) & ~31;
  if (!s->fused) {
    const size_t floats = (size_t)64 * FUSED_MAX_M + (size_t)FUSED_KEYS * FUSED_MAX_M + (size_t)FUSED_MAX_M * 64 + 3 * FUSED_MAX_M;
    s->fused = aligned_alloc(64, sizeof(float) * floats);
    if (!s->fused) return -1;
  }
  float *qt = s->fused, *st = qt + 64 * FUSED_MAX_M, *o = st + FUSED_KEYS * FUSED_MAX_M, *mx = o + FUSED_MAX_M * 64;
  float *sm = mx + FUSED_MAX_M;
  int32_t *vis = (int32_t *)(sm + FUSED_MAX_M);
  /* queries transposed and scaled; padding queries are zero and see no key */
  for (int m = 0; m < mp; m++) {
    if (m < m_rows) {
      const int i = m / g;
      const float *src = j->q + (int64_t)(r0 + i) * j->stride + j->head_off + (int64_t)(m % g) * 64;
      for (int dd = 0; dd < 64; dd++) qt[(size_t)dd * mp + m] = src[dd] * j->scale;
      vis[m] = hi > n_all ? visible_prefix(j->k_pos, hi, j->q_pos[r0 + i]) : hi;
    } else {
      for (int dd = 0; dd < 64; dd++) qt[(size_t)dd * mp + m] = 0.0f;
      vis[m] = lo;
    }
    mx[m] = -INFINITY;
    sm[m] = 0.0f;
  }
  memset(o, 0, sizeof(float) * (size_t)mp * 64);
  for (int c0 = lo; c0 < hi; c0 += FUSED_KEYS) {
    const int kc = hi - c0 < FUSED_KEYS ? hi - c0 : FUSED_KEYS;
    const float *k = cache_rows(j, 0, c0, kc), *v = cache_rows(j, 1, c0, kc);
    if (!k || !v) return -1;
    /* scores, key-major */
    for (int m0 = 0; m0 < mp; m0 += 32) {
      int c = 0;
      for (; c + 6 <= kc; c += 6) fused_scores(6, 2, k + (size_t)c * 64, qt + m0, mp, st + (size_t)c * mp + m0);
      for (; c < kc; c++) fused_scores(1, 2, k + (size_t)c * 64, qt + m0, mp, st + (size_t)c * mp + m0);
    }
    /* online softmax, 16 queries at a time: key c counts for query m when c0 + c < vis[m] */
    int any_rescale = 0;
    for (int m0 = 0; m0 < mp; m0 += 16) {
      const __m512i left = _mm512_sub_epi32(_mm512_load_si512((const void *)(vis + m0)), _mm512_set1_epi32(c0));
      /* most chunks are seen whole by all 16 queries: no masks then */
      const int whole = _mm512_cmpge_epi32_mask(left, _mm512_set1_epi32(kc)) == 0xffff;
      __m512 cm = _mm512_set1_ps(-INFINITY);
      if (whole) {
        for (int c = 0; c < kc; c++) cm = _mm512_max_ps(cm, _mm512_load_ps(st + (size_t)c * mp + m0));
      } else {
        for (int c = 0; c < kc; c++) {
          const __mmask16 live = _mm512_cmpgt_epi32_mask(left, _mm512_set1_epi32(c));
          cm = _mm512_mask_max_ps(cm, live, cm, _mm512_load_ps(st + (size_t)c * mp + m0));
        }
      }
      const __m512 old = _mm512_load_ps(mx + m0);
      const __m512 nm = _mm512_max_ps(old, cm);
      const __mmask16 seen = _mm512_cmp_ps_mask(nm, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
      /* corr = exp(old - nm) where something was seen (0 where old was -inf), 1 elsewhere */
      const __m512 corr = _mm512_mask_blend_ps(seen, _mm512_set1_ps(1.0f), kv_exp16(_mm512_sub_ps(old, nm)));
      __m512 sum = _mm512_mul_ps(_mm512_load_ps(sm + m0), corr);
      if (whole) {
        for (int c = 0; c < kc; c++) {
          float *row = st + (size_t)c * mp + m0;
          const __m512 e = exp16_nonpos(_mm512_sub_ps(_mm512_load_ps(row), nm));
          _mm512_store_ps(row, e);
          sum = _mm512_add_ps(sum, e);
        }
      } else {
        for (int c = 0; c < kc; c++) {
          const __mmask16 live = _mm512_cmpgt_epi32_mask(left, _mm512_set1_epi32(c));
          float *row = st + (size_t)c * mp + m0;
          const __m512 e = _mm512_maskz_mov_ps(live, kv_exp16(_mm512_sub_ps(_mm512_load_ps(row), nm)));
          _mm512_store_ps(row, e);
          sum = _mm512_add_ps(sum, e);
        }
      }
      _mm512_store_ps(mx + m0, nm);
      _mm512_store_ps(sm + m0, sum);
      const __mmask16 rescale = _mm512_cmp_ps_mask(corr, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ);
      if (rescale) {
        any_rescale = 1;
        float cv[16] __attribute__((aligned(64)));
        _mm512_store_ps(cv, corr);
        for (int l = 0; l < 16; l++) {
          if (!((rescale >> l) & 1)) continue;
          float *orow = o + (size_t)(m0 + l) * 64;
          const __m512 cb = _mm512_set1_ps(cv[l]);
          for (int t = 0; t < 4; t++) _mm512_store_ps(orow + 16 * t, _mm512_mul_ps(_mm512_load_ps(orow + 16 * t), cb));
        }
      }
    }
    (void)any_rescale;
    /* O += P^T V, 64 values at a time (16 KB, in L1 while every query reads them) */
    for (int cs = 0; cs < kc; cs += 64) {
      const int ce = kc - cs < 64 ? kc : cs + 64;
      int m0 = 0;
      for (; m0 + 6 <= m_rows; m0 += 6) fused_pv(6, st, mp, m0, v, cs, ce, o);
      switch (m_rows - m0) {
        case 5: fused_pv(5, st, mp, m0, v, cs, ce, o); break;
        case 4: fused_pv(4, st, mp, m0, v, cs, ce, o); break;
        case 3: fused_pv(3, st, mp, m0, v, cs, ce, o); break;
        case 2: fused_pv(2, st, mp, m0, v, cs, ce, o); break;
        case 1: fused_pv(1, st, mp, m0, v, cs, ce, o); break;
        default: break;
      }
    }
  }
  for (int m = 0; m < m_rows; m++) emit(j, unit, r0, m, o + (size_t)m * 64, mx[m], sm[m]);
  return 0;
}
#endif

static int run_unit(Job *j, Scratch *s, int unit) {
  const int b = unit / j->splits, sp = unit % j->splits;
  const int r0 = b * j->rb, br = j->rows - r0 < j->rb ? j->rows - r0 : j->rb;
  int32_t pmin = j->q_pos[r0], pmax = j->q_pos[r0];
  for (int i = 1; i < br; i++) {
    const int32_t p = j->q_pos[r0 + i];
    if (p < pmin) pmin = p;
    if (p > pmax) pmax = p;
  }
  const int nv = visible_prefix(j->k_pos, j->n, pmax);
  const int n_all = visible_prefix(j->k_pos, nv, pmin);
  const int lo = (int)((int64_t)nv * sp / j->splits), hi = (int)((int64_t)nv * (sp + 1) / j->splits);
  if (j->rows == 1) return unit_one_row(j, s, unit, lo, hi);
#if defined(__AVX512F__) && !defined(KV_NO_FUSED)
  if (j->d == 64 && br * j->group <= FUSED_MAX_M) return unit_block_fused(j, s, unit, r0, br, lo, hi, n_all);
#endif
  return unit_block(j, s, unit, r0, br, lo, hi, n_all);
}

static void worker(void *arg, int index) {
  (void)index;
  Job *j = arg;
  Scratch s = {0};
  for (;;) {
    const int taken = atomic_fetch_add(&j->next, 1);
    if (taken >= j->units) break;
    /* the last row blocks see the most keys: start with them, so that no thread is left with a long one at the end */
    const int unit = j->units - 1 - taken;
    if (run_unit(j, &s, unit) != 0) break; /* out of memory: the unit stays undone and the call fails */
    atomic_fetch_add(&j->done, 1);
  }
  scratch_free(&s);
}

/* Combine the key ranges of each row: weights sum_s * exp(max_s - max) over the ranges that saw keys. */
static void merge_splits(const Job *j) {
  const int d = j->d, g = j->group;
  for (int b = 0; b < j->nblocks; b++) {
    const int r0 = b * j->rb, br = j->rows - r0 < j->rb ? j->rows - r0 : j->rb;
    for (int m = 0; m < br * g; m++) {
      float *dst = j->out + (int64_t)(r0 + m / g) * j->stride + j->head_off + (int64_t)(m % g) * d;
      float max = -INFINITY;
      for (int sp = 0; sp < j->splits; sp++) {
        const float *rec = j->part + ((size_t)(b * j->splits + sp) * j->rb * g + m) * (d + 2);
        if (rec[d + 1] > 0.0f && rec[d] > max) max = rec[d];
      }
      for (int t = 0; t < d; t++) dst[t] = 0.0f;
      float total = 0.0f;
      for (int sp = 0; sp < j->splits; sp++) {
        const float *rec = j->part + ((size_t)(b * j->splits + sp) * j->rb * g + m) * (d + 2);
        if (!(rec[d + 1] > 0.0f)) continue;
        const float w = rec[d + 1] * kv_expf(rec[d] - max);
        total += w;
        for (int t = 0; t < d; t++) dst[t] += w * rec[t];
      }
      if (total > 0.0f) {
        const float inv = 1.0f / total;
        for (int t = 0; t < d; t++) dst[t] *= inv;
      }
    }
  }
}

int kv_attend_head(const float *q, int64_t q_row_stride, float *out, int rows, int d, int first_head, int group,
                   const int32_t *q_pos, const void *keys, const void *values, int half, const int32_t *k_pos, int n,
                   float scale) {
  if (rows <= 0 || group <= 0 || d <= 0) return 0;
  Job j = {
      .q = q, .stride = q_row_stride, .head_off = (int64_t)first_head * d, .out = out, .rows = rows, .d = d,
      .group = group, .q_pos = q_pos, .keys = keys, .values = values, .half = half, .k_pos = k_pos, .n = n,
      .scale = scale,
  };
  j.rb = rows < KV_ATTEND_ROW_BLOCK ? rows : KV_ATTEND_ROW_BLOCK;
  j.nblocks = (rows + j.rb - 1) / j.rb;

  /* threads: OpenBLAS's setting is the budget; small calls stay on this thread */
  int threads = kv_threads();
  int32_t pmax = q_pos[0];
  for (int i = 1; i < rows; i++) pmax = q_pos[i] > pmax ? q_pos[i] : pmax;
  const int nv = visible_prefix(k_pos, n, pmax);
#ifdef __AVX512F__
  const int fast_decode = rows == 1 && group <= 4 && d % 16 == 0 && d <= 128;
#elif defined(KV_DECODE_AVX2)
  const int fast_decode = rows == 1 && group <= DECODE_MAX_GROUP8 && (d == 64 || d == 128);
#else
  const int fast_decode = 0;
#endif
  /* the vectorized decode streams K and V at memory speed: worth a second thread from DECODE_SPLIT_MIN floats */
  if (fast_decode ? (int64_t)nv * d < DECODE_SPLIT_MIN : (double)rows * group * nv * d * 2.0 < PARALLEL_MIN_MACS) threads = 1;
  j.splits = 1;
  if (threads > j.nblocks) {
    j.splits = (threads + j.nblocks - 1) / j.nblocks;
    const int by_keys = nv / MIN_SPLIT_KEYS > 1 ? nv / MIN_SPLIT_KEYS : 1;
    if (j.splits > by_keys) j.splits = by_keys;
  }
  j.units = j.nblocks * j.splits;
  if (threads > j.units) threads = j.units;
  if (j.splits > 1) {
    j.part = malloc(sizeof(float) * (size_t)j.units * j.rb * group * (d + 2));
    if (!j.part) return -1;
  }
  atomic_init(&j.next, 0);
  atomic_init(&j.done, 0);

#if defined(__AVX512F__) && !defined(KV_NO_FUSED)
  const int no_blas = fast_decode || (rows > 1 && d == 64 && j.rb * group <= FUSED_MAX_M);
#else
  const int no_blas = fast_decode;
#endif
  if (no_blas) kv_pool_run(worker, &j, threads);
  else kv_pool_run_blas1(worker, &j, threads);

  const int ok = atomic_load(&j.done) == j.units;
  if (ok && j.splits > 1) merge_splits(&j);
  free(j.part);
  return ok ? 0 : -1;
}
