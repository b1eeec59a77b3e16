/*
 * ggml's block-quantized weights (GGUF Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), read where they lie:
 * - the decode's matrix-vector products: the activation vector is quantized once per call to 8 bits in blocks of
 *   32 (per-block float scale, per-16 sums), then every weight block's dot product is an integer one
 *   (AVX2 maddubs: unsigned weight levels times signed activations), scaled per group in float;
 * - rows dequantized to float32 (a prefill's blocks of rows before their sgemm; the embedding lookup).
 * Weight i of every format is a[g] * q[i] + b[g] for its group g of 16 (src/quant/blocks.ts, the TypeScript
 * twin, decodes the same way), so the integer dot of a group is exact and only the scaling rounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "pool.h"
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

static const int block_size[KV_QUANT_TYPES] = {32, 32, 32, 32, 32, 256, 256, 256};
static const int block_bytes[KV_QUANT_TYPES] = {18, 20, 22, 24, 34, 144, 176, 210};

int kv_quant_block_size(int type) { return type >= 0 && type < KV_QUANT_TYPES ? block_size[type] : 0; }
int kv_quant_block_bytes(int type) { return type >= 0 && type < KV_QUANT_TYPES ? block_bytes[type] : 0; }

/* A block's half scale: one F16C instruction where the CPU has it (the portable conversion branches). */
static inline float half_at(const uint8_t *p) {
#ifdef __F16C__
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
#else
  return kv_half_bits_to_float((uint16_t)(p[0] | (p[1] << 8)));
#endif
}

static inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/* A Q4_K or Q5_K super-block's per-16 terms: a = d * scale, b = -dmin * min of each 32-weight sub-block. */
static void k_quant_terms(const uint8_t *p, float *a, float *b) {
  const float d = half_at(p), dmin = half_at(p + 2);
  for (int g = 0; g < 8; g++) {
    int s, m;
    scale_min_k4(g, p + 4, &s, &m);
    a[2 * g] = a[2 * g + 1] = d * (float)s;
    b[2 * g] = b[2 * g + 1] = -(dmin * (float)m);
  }
}

/* One block into integers q[] and per-16 terms a[], b[] (weight = a * q + b): the portable path, and dequantization. */
static void decode_block(int type, const uint8_t *p, int32_t *q, float *a, float *b) {
  switch (type) {
    case KV_Q8_0: {
      const float d = half_at(p);
      for (int i = 0; i < 32; i++) q[i] = (int8_t)p[2 + i];
      a[0] = a[1] = d;
      b[0] = b[1] = 0;
      return;
    }
    case KV_Q4_0:
    case KV_Q4_1: {
      const float d = half_at(p), m = type == KV_Q4_1 ? half_at(p + 2) : 0.0f;
      const uint8_t *qs = p + (type == KV_Q4_1 ? 4 : 2);
      const int off = type == KV_Q4_0 ? 8 : 0;
      for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 15) - off;
        q[j + 16] = (qs[j] >> 4) - off;
      }
      a[0] = a[1] = d;
      b[0] = b[1] = m;
      return;
    }
    case KV_Q5_0:
    case KV_Q5_1: {
      const float d = half_at(p), m = type == KV_Q5_1 ? half_at(p + 2) : 0.0f;
      const uint8_t *hb = p + (type == KV_Q5_1 ? 4 : 2);
      uint32_t qh;
      memcpy(&qh, hb, 4);
      const uint8_t *qs = hb + 4;
      const int off = type == KV_Q5_0 ? 16 : 0;
      for (int j = 0; j < 16; j++) {
        q[j] = ((qs[j] & 15) | (((qh >> j) << 4) & 0x10)) - off;
        q[j + 16] = ((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - off;
      }
      a[0] = a[1] = d;
      b[0] = b[1] = m;
      return;
    }
    case KV_Q4_K:
    case KV_Q5_K: {
      k_quant_terms(p, a, b);
      const int five = type == KV_Q5_K;
      const uint8_t *qh = p + 16, *ql = five ? p + 48 : p + 16;
      for (int j = 0; j < 4; j++, ql += 32) {
        for (int t = 0; t < 2; t++) {
          const int bit = 1 << (2 * j + t);
          for (int l = 0; l < 32; l++)
            q[64 * j + 32 * t + l] = (t == 0 ? ql[l] & 15 : ql[l] >> 4) + (five && (qh[l] & bit) ? 16 : 0);
        }
      }
      return;
    }
    case KV_Q6_K: {
      const float d = half_at(p + 208);
      for (int n = 0; n < 2; n++) {
        const uint8_t *ql = p + 64 * n, *qh = p + 128 + 32 * n;
        const int8_t *sc = (const int8_t *)(p + 192 + 8 * n);
        for (int l = 0; l < 32; l++) {
          int32_t *y = q + 128 * n + l;
          y[0] = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
          y[32] = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
          y[64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          y[96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        }
        for (int g = 0; g < 8; g++) {
          a[8 * n + g] = d * (float)sc[g];
          b[8 * n + g] = 0;
        }
      }
      return;
    }
  }
}

int kv_quant_level_offset(int type) {
  return type == KV_Q8_0 ? 128 : type == KV_Q4_0 ? 8 : type == KV_Q5_0 ? 16 : type == KV_Q6_K ? 32 : 0;
}

/* four bytes as one word: the levels are unpacked four at a time (u[w] holds levels 4w..4w+3) */
static inline uint32_t word_at(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

void kv_quant_block_levels(int type, const uint8_t *p, uint32_t *u, float *a, float *b) {
  const uint32_t lo = 0x0F0F0F0Fu;
  switch (type) {
    case KV_Q8_0:
      for (int w = 0; w < 8; w++) u[w] = word_at(p + 2 + 4 * w) ^ 0x80808080u;
      a[0] = a[1] = half_at(p);
      b[0] = b[1] = 0;
      return;
    case KV_Q4_K: {
      k_quant_terms(p, a, b);
      for (int j = 0; j < 4; j++)
        for (int w = 0; w < 8; w++) {
          const uint32_t v = word_at(p + 16 + 32 * j + 4 * w);
          u[16 * j + w] = v & lo;
          u[16 * j + 8 + w] = (v >> 4) & lo;
        }
      return;
    }
    case KV_Q6_K: {
      const float d = half_at(p + 208);
      for (int g = 0; g < 16; g++) a[g] = d * (float)(int8_t)p[192 + g], b[g] = 0;
      for (int n = 0; n < 2; n++)
        for (int w = 0; w < 8; w++) {
          const uint32_t l0 = word_at(p + 64 * n + 4 * w), l1 = word_at(p + 64 * n + 32 + 4 * w);
          const uint32_t h = word_at(p + 128 + 32 * n + 4 * w);
          uint32_t *y = u + 32 * n + w;
          y[0] = (l0 & lo) | ((h & 0x03030303u) << 4);
          y[8] = (l1 & lo) | (((h >> 2) & 0x03030303u) << 4);
          y[16] = ((l0 >> 4) & lo) | (((h >> 4) & 0x03030303u) << 4);
          y[24] = ((l1 >> 4) & lo) | (((h >> 6) & 0x03030303u) << 4);
        }
      return;
    }
    default: {
      int32_t q[256];
      decode_block(type, p, q, a, b);
      const int off = kv_quant_level_offset(type);
      for (int w = 0; w < block_size[type] / 4; w++)
        u[w] = (uint32_t)(uint8_t)(q[4 * w] + off) | (uint32_t)(uint8_t)(q[4 * w + 1] + off) << 8 |
               (uint32_t)(uint8_t)(q[4 * w + 2] + off) << 16 | (uint32_t)(uint8_t)(q[4 * w + 3] + off) << 24;
    }
  }
}

/* ---------------------------------------------------------------- dequantization */

#if defined(__AVX2__) && defined(__FMA__)
static int dequant_block_avx2(int type, const uint8_t *p, float *y);
#endif

void kv_dequant_blocks_st(int type, const uint8_t *src, int64_t blocks, float *dst) {
  const int bs = block_size[type], bb = block_bytes[type];
  int32_t q[256];
  float a[16], b[16];
  for (int64_t i = 0; i < blocks; i++) {
#if defined(__AVX2__) && defined(__FMA__)
    if (dequant_block_avx2(type, src + i * bb, dst + i * bs)) continue;
#endif
    decode_block(type, src + i * bb, q, a, b);
    float *y = dst + i * bs;
    for (int j = 0; j < bs; j++) {
      const float prod = a[j >> 4] * (float)q[j]; /* rounded before the add, as ggml's dequantize_row_* */
      y[j] = prod + b[j >> 4];
    }
  }
}

typedef struct {
  int type;
  const uint8_t *src;
  float *dst;
} DequantJob;

static void dequant_range(void *arg, int64_t b, int64_t e) {
  const DequantJob *j = arg;
  kv_dequant_blocks_st(j->type, j->src + b * block_bytes[j->type], e - b, j->dst + b * block_size[j->type]);
}

void kv_dequant_blocks(int type, const uint8_t *src, int64_t blocks, float *dst) {
  DequantJob j = {.type = type, .src = src, .dst = dst};
  const int64_t grain = (1 << 16) / block_size[type];
  kv_pool_for(blocks, grain, 4 * grain, dequant_range, &j);
}

/* ---------------------------------------------------------------- activations */

/* Round to nearest, ties to even, in float32 (as the TypeScript twin). */
static inline float rint_f32(float x) {
  volatile float t = x + 12582912.0f;
  return t - 12582912.0f;
}

void kv_quantize_activations(int k, const float *x, int8_t *q, float *d, int32_t *sums) {
  for (int blk = 0; blk < k / 32; blk++) {
    const float *xb = x + 32 * blk;
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) {
      const float v = xb[i] < 0 ? -xb[i] : xb[i];
      if (v > amax) amax = v;
    }
    const float s = amax / 127.0f;
    const float id = s != 0.0f ? 1.0f / s : 0.0f;
    d[blk] = s;
    int32_t s0 = 0, s1 = 0;
    for (int i = 0; i < 32; i++) {
      const int v = (int)rint_f32(xb[i] * id);
      q[32 * blk + i] = (int8_t)v;
      if (i < 16) s0 += v;
      else s1 += v;
    }
    sums[2 * blk] = s0;
    sums[2 * blk + 1] = s1;
  }
}

/* ---------------------------------------------------------------- dot products of one row */

typedef struct {
  const int8_t *q;
  const float *d;
  const int32_t *sums;
  /* d[b] * (the sum of block b's 32 levels): the offsets' and mins' factor, one per activation block */
  const float *dsum;
  /* the same per group of 16 (Q6_K's scales are per 16) */
  const float *dsum16;
} QVec;

/* The portable row: decode each block, integer sums per group of 16. */
static float row_dot_scalar(int type, const uint8_t *row, int k, const QVec *x) {
  const int bs = block_size[type], bb = block_bytes[type];
  int32_t q[256];
  float a[16], b[16];
  float acc = 0.0f;
  for (int i = 0; i < k / bs; i++) {
    decode_block(type, row + (int64_t)i * bb, q, a, b);
    const int x0 = i * bs;
    for (int g = 0; g < bs / 16; g++) {
      int32_t isum = 0;
      for (int j = 0; j < 16; j++) isum += q[16 * g + j] * x->q[x0 + 16 * g + j];
      const int gx = x0 / 16 + g;
      acc += x->d[gx >> 1] * (a[g] * (float)isum + b[g] * (float)x->sums[gx]);
    }
  }
  return acc;
}

#if defined(__AVX2__) && defined(__FMA__)
#ifndef QGEMV_PREFETCH
#define QGEMV_PREFETCH 2048
#endif
static inline float hsum8(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

/* 8 int32 sums of 4 adjacent products each: unsigned bytes u times signed bytes s (one VNNI instruction where the
 * CPU has it; the same sums: no level here is large enough for maddubs' 16-bit saturation) */
static inline __m256i dot_u8_s8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* byte i of the result is 0x10 where bit i of x is set, else 0 */
static inline __m256i bits_to_16s(uint32_t x) {
  __m256i t = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x),
                                  _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL,
                                                     0x0303030303030303LL));
  t = _mm256_or_si256(t, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
  return _mm256_and_si256(_mm256_cmpeq_epi8(t, _mm256_set1_epi64x(-1LL)), _mm256_set1_epi8(0x10));
}

static inline __m256i nibbles32(const uint8_t *qs) {
  const __m128i b = _mm_loadu_si128((const __m128i *)qs);
  const __m128i m = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

/* A row of a 32-weight block type; always inlined with a constant type, so each type gets its own loop. Two
 * accumulators: one FMA chain (4 cycles a block) would bound a thread near its share of the bandwidth. */
static inline __attribute__((always_inline)) float row_dot32(const int type, const uint8_t *row, int k, const QVec *x) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  float extra = 0.0f; /* the b * sum(xq) terms */
  const int bb = block_bytes[type];
  for (int i = 0; i < k / 32; i++) {
    const uint8_t *p = row + (int64_t)i * bb;
    _mm_prefetch((const char *)p + QGEMV_PREFETCH, _MM_HINT_T0);
    const __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + 32 * i));
    const float dw = half_at(p), d = dw * x->d[i];
    __m256i isum;
    if (type == KV_Q8_0) {
      const __m256i w = _mm256_loadu_si256((const __m256i *)(p + 2));
      isum = dot_u8_s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w));
    } else if (type == KV_Q4_0) {
      isum = dot_u8_s8(nibbles32(p + 2), xq);
      extra -= 8.0f * dw * x->dsum[i];
    } else if (type == KV_Q4_1) {
      isum = dot_u8_s8(nibbles32(p + 4), xq);
      extra += half_at(p + 2) * x->dsum[i];
    } else if (type == KV_Q5_0) {
      uint32_t qh;
      memcpy(&qh, p + 2, 4);
      isum = dot_u8_s8(_mm256_or_si256(nibbles32(p + 6), bits_to_16s(qh)), xq);
      extra -= 16.0f * dw * x->dsum[i];
    } else { /* KV_Q5_1 */
      uint32_t qh;
      memcpy(&qh, p + 4, 4);
      isum = dot_u8_s8(_mm256_or_si256(nibbles32(p + 8), bits_to_16s(qh)), xq);
      extra += half_at(p + 2) * x->dsum[i];
    }
    if (i & 1) acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc1);
    else acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc0);
  }
  return hsum8(_mm256_add_ps(acc0, acc1)) + extra;
}

/* The 8 scales and mins of a Q4_K / Q5_K super-block (6 bits each, packed in 12 bytes) as int32 lanes. Built in
 * general registers: storing the words and loading them as one 64-bit vector stalled store forwarding, a third
 * of the row's time. */
static inline void k4_scales_mins(const uint8_t *p, __m256i *sm, __m256i *mm) {
  uint32_t u0, u1, u2;
  memcpy(&u0, p + 4, 4);
  memcpy(&u1, p + 8, 4);
  memcpy(&u2, p + 12, 4);
  const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
  const uint64_t scales = (uint64_t)(u0 & lo6) | (uint64_t)((u2 & lo4) | (((u0 >> 6) & lo2) << 4)) << 32;
  const uint64_t mins = (uint64_t)(u1 & lo6) | (uint64_t)(((u2 >> 4) & lo4) | (((u1 >> 6) & lo2) << 4)) << 32;
  *sm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)scales));
  *mm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mins));
}

/* The levels (0..15, or 0..31 with Q5_K's fifth bits) of a Q4_K / Q5_K super-block's 64-weight chunk j:
 * sub-block 2j in lo, 2j + 1 in hi. */
static inline void k_levels(const uint8_t *ql, __m256i qh, int five, int j, __m256i *lo, __m256i *hi) {
  const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
  const __m256i b = _mm256_loadu_si256((const __m256i *)(ql + 32 * j));
  *lo = _mm256_and_si256(b, m4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
  if (five) {
    *lo = _mm256_or_si256(*lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
    *hi = _mm256_or_si256(*hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
  }
}

/* The levels 0..63 of one half of a Q6_K block (64 bytes of low nibbles at ql, 32 of high bits at qh): its four
 * sub-blocks of 32 in q[0..3]. */
static inline void q6_levels(const uint8_t *ql, const uint8_t *qhp, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
  const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
  const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define ROW_DOT_512 1
/*
 * The types a Q8_0 or Q4_K_M model is made of, 64 or 128 weights per instruction (AVX-512 VNNI: vpdpbusd sums
 * 4 products of unsigned levels and signed activations into each int32 lane): about half the instructions of the
 * AVX2 rows per weight, so the rows keep up with memory instead of bounding the stream. Same integer sums;
 * the float scaling is summed in another order.
 */
static inline __m512 scales2(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

static inline __m512i dot512(__m512i u, __m512i s) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s); }

/* Q8_0: two blocks (64 weights) a step; signs moved onto the activations (vpdpbusd wants one operand unsigned) */
static float row_q8_0_512(const uint8_t *row, int k, const QVec *x) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  const int nb = k / 32;
  int i = 0;
  for (; i + 2 <= nb; i += 2) {
    const uint8_t *p = row + (int64_t)i * 34;
    _mm_prefetch((const char *)p + QGEMV_PREFETCH, _MM_HINT_T0);
    _mm_prefetch((const char *)p + QGEMV_PREFETCH + 64, _MM_HINT_T0);
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2))),
                                         _mm256_loadu_si256((const __m256i *)(p + 36)), 1);
    const __m512i xq = _mm512_loadu_si512(x->q + 32 * i);
    const __m512i s = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(w), _mm512_setzero_si512(), xq);
    const __m512 d = scales2(half_at(p) * x->d[i], half_at(p + 34) * x->d[i + 1]);
    if (i & 2) acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(_mm512_abs_epi8(w), s)), d, acc1);
    else acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(_mm512_abs_epi8(w), s)), d, acc0);
  }
  float tail = 0.0f;
  if (i < nb) tail = row_dot32(KV_Q8_0, row + (int64_t)i * 34, 32, &(QVec){x->q + 32 * i, x->d + i, NULL, NULL, NULL});
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

/* lanes 0-7 take element a of v, lanes 8-15 element b */
static inline __m512 spread2(__m512 v, int a, int b) {
  return _mm512_permutexvar_ps(_mm512_inserti64x4(_mm512_set1_epi32(a), _mm256_set1_epi32(b), 1), v);
}

/* Q4_K and Q5_K: 128 weights (two 64-weight chunks) a step. Chunk j's low nibbles are sub-block 2j, its high ones
 * 2j + 1; one 64-byte load holds chunks 2h and 2h + 1, so its low nibbles are sub-blocks 4h and 4h + 2. */
static inline __attribute__((always_inline)) float row_k45_512(const int five, const uint8_t *row, int k, const QVec *x) {
  const int bb = five ? 176 : 144;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc = _mm512_setzero_ps();
  __m256 mins_acc = _mm256_setzero_ps();
  for (int i = 0; i < k / 256; i++) {
    const uint8_t *p = row + (int64_t)i * bb;
    for (int o = 0; o < bb; o += 64) _mm_prefetch((const char *)p + QGEMV_PREFETCH + o, _MM_HINT_T0);
    __m256i sm, mm;
    k4_scales_mins(p, &sm, &mm);
    const __m256 s8 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(half_at(p)), _mm256_cvtepi32_ps(sm)), _mm256_loadu_ps(x->d + 8 * i));
    mins_acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(half_at(p + 2)), _mm256_cvtepi32_ps(mm)), _mm256_loadu_ps(x->dsum + 8 * i),
                               mins_acc);
    const __m512 scales = _mm512_castps256_ps512(s8);
    const uint8_t *ql = p + (five ? 48 : 16);
    const __m512i qh = five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16))) : _mm512_setzero_si512();
    const int8_t *xq = x->q + 256 * i;
    for (int h = 0; h < 2; h++) {
      const __m512i b = _mm512_loadu_si512(ql + 64 * h);
      __m512i lo = _mm512_and_si512(b, m4), hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
      if (five) {
        /* the fifth bit of sub-block s is bit s of qh's byte */
        const __m512i bl = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (4 * h))), _mm256_set1_epi8((char)(1 << (4 * h + 2))), 1);
        lo = _mm512_or_si512(lo, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(qh, bl), _mm512_set1_epi8(16)));
        const __m512i bh = _mm512_slli_epi16(bl, 1);
        hi = _mm512_or_si512(hi, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(qh, bh), _mm512_set1_epi8(16)));
      }
      const __m512i x0 = _mm512_loadu_si512(xq + 128 * h), x1 = _mm512_loadu_si512(xq + 128 * h + 64);
      const __m512i xlo = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(1, 0, 1, 0)), xhi = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 2, 3, 2));
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(lo, xlo)), spread2(scales, 4 * h, 4 * h + 2), acc);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(hi, xhi)), spread2(scales, 4 * h + 1, 4 * h + 3), acc);
    }
  }
  return _mm512_reduce_add_ps(acc) - hsum8(mins_acc);
}

/* Q6_K: 128 weights a step (one half of a super-block: 64 bytes of low nibbles, 32 of high bit pairs); its
 * scales are per 16 weights, 4 int32 lanes each */
static float row_q6_k_512(const uint8_t *row, int k, const QVec *x) {
  const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
  /* vpsrlvw counts: the low 256 bits' bit pairs and the high 256 bits' */
  const __m512i sh_a = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i sh_b = _mm512_add_epi16(sh_a, _mm512_set1_epi16(4));
  const __m512i half_of_group = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  __m512 acc = _mm512_setzero_ps();
  __m256 offsets = _mm256_setzero_ps(); /* the -32 of every level: 32 d sc_g xd sum_g */
  for (int i = 0; i < k / 256; i++) {
    const uint8_t *p = row + (int64_t)i * 210;
    for (int o = 0; o < 256; o += 64) _mm_prefetch((const char *)p + QGEMV_PREFETCH + o, _MM_HINT_T0);
    const __m128i sc_all = _mm_loadu_si128((const __m128i *)(p + 192));
    const __m256 dv = _mm256_set1_ps(half_at(p + 208));
    offsets = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc_all))), _mm256_loadu_ps(x->dsum16 + 16 * i),
                              offsets);
    offsets = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc_all, 8)))),
                              _mm256_loadu_ps(x->dsum16 + 16 * i + 8), offsets);
    /* d * sc_g * (the activation scale of group g's 32-weight sub-block), g = 0..15 */
    const __m512 gs = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(half_at(p + 208)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc_all))),
                                    _mm512_permutexvar_ps(half_of_group, _mm512_castps256_ps512(_mm256_loadu_ps(x->d + 8 * i))));
    for (int n = 0; n < 2; n++) {
      const __m512i l = _mm512_loadu_si512(p + 64 * n);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n)));
      /* sub-blocks 4n, 4n + 1 (low nibbles, bit pairs 0 and 1) and 4n + 2, 4n + 3 (high nibbles, pairs 2 and 3) */
      const __m512i a = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_a), m2), 4));
      const __m512i b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_b), m2), 4));
      const int8_t *xq = x->q + 256 * i + 128 * n;
      const __m512i ga = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
      const __m512i first = _mm512_set1_epi32(8 * n);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(a, _mm512_loadu_si512(xq))), _mm512_permutexvar_ps(_mm512_add_epi32(ga, first), gs), acc);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot512(b, _mm512_loadu_si512(xq + 64))),
                            _mm512_permutexvar_ps(_mm512_add_epi32(ga, _mm512_add_epi32(first, _mm512_set1_epi32(4))), gs), acc);
    }
  }
  return _mm512_reduce_add_ps(acc) - 32.0f * hsum8(offsets);
}
#endif

static float row_dot_avx2(int type, const uint8_t *row, int k, const QVec *x) {
  __m256 acc = _mm256_setzero_ps();
  const int bb = block_bytes[type];
#ifdef ROW_DOT_512
  switch (type) {
    case KV_Q8_0:
      return row_q8_0_512(row, k, x);
    case KV_Q4_K:
      return row_k45_512(0, row, k, x);
    case KV_Q5_K:
      return row_k45_512(1, row, k, x);
    case KV_Q6_K:
      return row_q6_k_512(row, k, x);
  }
#endif
  switch (type) {
    case KV_Q8_0:
      return row_dot32(KV_Q8_0, row, k, x);
    case KV_Q4_0:
      return row_dot32(KV_Q4_0, row, k, x);
    case KV_Q4_1:
      return row_dot32(KV_Q4_1, row, k, x);
    case KV_Q5_0:
      return row_dot32(KV_Q5_0, row, k, x);
    case KV_Q5_1:
      return row_dot32(KV_Q5_1, row, k, x);
  }
  if (type == KV_Q4_K || type == KV_Q5_K) {
    __m256 mins_acc = _mm256_setzero_ps();
    for (int i = 0; i < k / 256; i++) {
      const uint8_t *p = row + (int64_t)i * bb;
      _mm_prefetch((const char *)p + QGEMV_PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)p + QGEMV_PREFETCH + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)p + QGEMV_PREFETCH + 128, _MM_HINT_T0);
      const int five = type == KV_Q5_K;
      __m256i sm, mm;
      k4_scales_mins(p, &sm, &mm);
      const __m256 xd = _mm256_loadu_ps(x->d + 8 * i);
      /* per sub-block j: d * scale_j * xd_j (the integer sum's factor), and the mins' term dmin * m_j * xd_j * sum_j */
      const __m256 scales = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(half_at(p)), _mm256_cvtepi32_ps(sm)), xd);
      mins_acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(half_at(p + 2)), _mm256_cvtepi32_ps(mm)), _mm256_loadu_ps(x->dsum + 8 * i),
                                 mins_acc);
      const uint8_t *ql = five ? p + 48 : p + 16;
      const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
      const int8_t *xq = x->q + 256 * i;
      for (int j = 0; j < 4; j++) {
        __m256i lo, hi;
        k_levels(ql, qh, five, j, &lo, &hi);
        const __m256i s0 = dot_u8_s8(lo, _mm256_loadu_si256((const __m256i *)(xq + 64 * j)));
        const __m256i s1 = dot_u8_s8(hi, _mm256_loadu_si256((const __m256i *)(xq + 64 * j + 32)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(2 * j)), acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(2 * j + 1)), acc);
      }
    }
    acc = _mm256_sub_ps(acc, mins_acc);
  } else { /* KV_Q6_K */
    /* shuffles that spread group scales 2s (low lane) and 2s + 1 (high lane) over 8 int16 each */
    const __m256i spread[4] = {
        _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
        _mm256_setr_epi8(4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7),
        _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11),
        _mm256_setr_epi8(12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
                         14, 15, 14, 15),
    };
    __m256 offsets = _mm256_setzero_ps(); /* the -32 of every level: 32 d sc_g xd sum_g */
    for (int i = 0; i < k / 256; i++) {
      const uint8_t *p = row + (int64_t)i * bb;
      for (int o = 0; o < 256; o += 64) _mm_prefetch((const char *)p + QGEMV_PREFETCH + o, _MM_HINT_T0);
      const float d = half_at(p + 208);
      const __m256 dv = _mm256_set1_ps(d);
      const __m128i sc_all = _mm_loadu_si128((const __m128i *)(p + 192));
      const __m256 sc_lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc_all));
      const __m256 sc_hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc_all, 8)));
      offsets = _mm256_fmadd_ps(_mm256_mul_ps(dv, sc_lo), _mm256_loadu_ps(x->dsum16 + 16 * i), offsets);
      offsets = _mm256_fmadd_ps(_mm256_mul_ps(dv, sc_hi), _mm256_loadu_ps(x->dsum16 + 16 * i + 8), offsets);
      for (int n = 0; n < 2; n++) {
        const uint8_t *ql = p + 64 * n, *qhp = p + 128 + 32 * n;
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(p + 192 + 8 * n))));
        __m256i q[4];
        q6_levels(ql, qhp, q);
        for (int s = 0; s < 4; s++) {
          const int sb = 8 * i + 4 * n + s;
          const __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + 32 * sb));
          const __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(q[s], xq), _mm256_shuffle_epi8(sc16, spread[s]));
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * x->d[sb]), acc);
        }
      }
    }
    acc = _mm256_fnmadd_ps(_mm256_set1_ps(32.0f), offsets, acc);
  }
  return hsum8(acc);
}
#endif

static inline float row_dot(int type, const uint8_t *row, int k, const QVec *x) {
#if defined(__AVX2__) && defined(__FMA__)
  return row_dot_avx2(type, row, k, x);
#else
  return row_dot_scalar(type, row, k, x);
#endif
}

float kv_quant_row_dot_scalar(int type, const uint8_t *row, int k, const int8_t *q, const float *d, const int32_t *sums) {
  QVec x = {q, d, sums, NULL, NULL};
  return row_dot_scalar(type, row, k, &x);
}

/* ---------------------------------------------------------------- the products */

/* About 128 KB of blocks per work item (quantized rows are 4-8x shorter than float ones). */
#define QGEMV_BLOCK_BYTES (1 << 19)
#define QGEMV_PARALLEL_MIN_BYTES (1 << 18)

typedef struct {
  int k, accumulate, rows_per_block[KV_GEMV_MAX_PARTS], nvec;
  const KvQuantPart *parts;
  int first_block[KV_GEMV_MAX_PARTS + 1];
  QVec x[KV_GEMV_MAX_VECS];
} QGemvJob;

static void qgemv_blocks(void *arg, int64_t b, int64_t e) {
  const QGemvJob *j = arg;
  for (int64_t blk = b; blk < e; blk++) {
    int p = 0;
    while (blk >= j->first_block[p + 1]) p++;
    const KvQuantPart *part = &j->parts[p];
    const int rpb = j->rows_per_block[p];
    const int r0 = ((int)blk - j->first_block[p]) * rpb;
    const int rows = part->n - r0 < rpb ? part->n - r0 : rpb;
    const int64_t row_bytes = (int64_t)(j->k / block_size[part->type]) * block_bytes[part->type];
    /* the block comes from memory for the first vector and from cache for the others */
    for (int v = 0; v < j->nvec; v++) {
      float *y = part->y + (int64_t)v * part->n;
      for (int r = r0; r < r0 + rows; r++) {
        const float s = row_dot(part->type, part->data + r * row_bytes, j->k, &j->x[v]);
        y[r] = j->accumulate ? y[r] + s : s;
      }
    }
  }
}

/* Thread-local room for the quantized activations (k <= the largest hidden or intermediate size). */
static __thread int8_t *act_q;
static __thread float *act_d;
static __thread int32_t *act_s;
static __thread float *act_dsum, *act_dsum16;
static __thread int64_t act_cap;

int kv_quant_gemv_parts(int count, const KvQuantPart *parts, int k, const float *x, int accumulate) {
  return kv_quant_gemv_parts_n(count, parts, k, x, 1, accumulate);
}

int kv_quant_gemv_parts_n(int count, const KvQuantPart *parts, int k, const float *x, int nvec, int accumulate) {
  if (count <= 0 || nvec <= 0) return 0;
  if (k % 32 != 0 || nvec > KV_GEMV_MAX_VECS) return -1;
  const int64_t need = (int64_t)k * nvec;
  if (need > act_cap) {
    free(act_q);
    free(act_d);
    free(act_s);
    free(act_dsum);
    free(act_dsum16);
    act_q = malloc((size_t)need);
    act_d = malloc(sizeof(float) * (size_t)(need / 32));
    act_s = malloc(sizeof(int32_t) * (size_t)(need / 16));
    act_dsum = malloc(sizeof(float) * (size_t)(need / 32));
    act_dsum16 = malloc(sizeof(float) * (size_t)(need / 16));
    if (!act_q || !act_d || !act_s || !act_dsum || !act_dsum16) {
      act_cap = 0;
      return -2;
    }
    act_cap = need;
  }
  QGemvJob j = {.k = k, .accumulate = accumulate, .parts = parts, .nvec = nvec};
  for (int v = 0; v < nvec; v++) {
    int8_t *q = act_q + (int64_t)v * k;
    float *d = act_d + (int64_t)v * (k / 32), *ds = act_dsum + (int64_t)v * (k / 32), *ds16 = act_dsum16 + (int64_t)v * (k / 16);
    int32_t *sums = act_s + (int64_t)v * (k / 16);
    kv_quantize_activations(k, x + (int64_t)v * k, q, d, sums);
    for (int b = 0; b < k / 32; b++) {
      ds[b] = d[b] * (float)(sums[2 * b] + sums[2 * b + 1]);
      ds16[2 * b] = d[b] * (float)sums[2 * b];
      ds16[2 * b + 1] = d[b] * (float)sums[2 * b + 1];
    }
    j.x[v] = (QVec){q, d, sums, ds, ds16};
  }
  int64_t total = 0;
  j.first_block[0] = 0;
  for (int p = 0; p < count; p++) {
    const int64_t row_bytes = (int64_t)(k / block_size[parts[p].type]) * block_bytes[parts[p].type];
    int rpb = (int)(QGEMV_BLOCK_BYTES / row_bytes);
    j.rows_per_block[p] = rpb < 4 ? 4 : rpb / 4 * 4;
    j.first_block[p + 1] = j.first_block[p] + (parts[p].n + j.rows_per_block[p] - 1) / j.rows_per_block[p];
    total += row_bytes * parts[p].n;
  }
  kv_pool_for(j.first_block[count], 1, total < QGEMV_PARALLEL_MIN_BYTES ? INT64_MAX : 0, qgemv_blocks, &j);
  return 0;
}

#if defined(__AVX2__) && defined(__FMA__)
/* y[0..8) = a * level + b for 8 unsigned byte levels at q, minus `off` (the product rounded before the add) */
static inline void put8(float *y, const uint8_t *q, int off, __m256 a, __m256 b) {
  const __m256i l = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q)), _mm256_set1_epi32(off));
  _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(l), a), b));
}

/* The prefill's dequantization of the types large models store most (Q8_0, Q4_K, Q5_K, Q6_K) in AVX2; 0 for the
 * others (the portable decode serves them). The same values as decode_block's. */
static int dequant_block_avx2(int type, const uint8_t *p, float *y) {
  const __m256 zero = _mm256_setzero_ps();
  if (type == KV_Q8_0) {
    const __m256 d = _mm256_set1_ps(half_at(p));
    for (int g = 0; g < 4; g++) {
      const __m256i l = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * g)));
      _mm256_storeu_ps(y + 8 * g, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(l), d), zero));
    }
    return 1;
  }
  if (type == KV_Q4_K || type == KV_Q5_K) {
    const float d = half_at(p), dmin = half_at(p + 2);
    const int five = type == KV_Q5_K;
    const uint8_t *ql = five ? p + 48 : p + 16;
    const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
    uint8_t lv[64];
    for (int j = 0; j < 4; j++) {
      __m256i lo, hi;
      k_levels(ql, qh, five, j, &lo, &hi);
      _mm256_storeu_si256((__m256i *)lv, lo);
      _mm256_storeu_si256((__m256i *)(lv + 32), hi);
      for (int t = 0; t < 2; t++) {
        int sc, m;
        scale_min_k4(2 * j + t, p + 4, &sc, &m);
        const __m256 a = _mm256_set1_ps(d * (float)sc), bm = _mm256_set1_ps(-(dmin * (float)m));
        for (int g = 0; g < 4; g++) put8(y + 64 * j + 32 * t + 8 * g, lv + 32 * t + 8 * g, 0, a, bm);
      }
    }
    return 1;
  }
  if (type == KV_Q6_K) {
    const float d = half_at(p + 208);
    uint8_t lv[128];
    for (int n = 0; n < 2; n++) {
      __m256i q[4];
      q6_levels(p + 64 * n, p + 128 + 32 * n, q);
      for (int s = 0; s < 4; s++) _mm256_storeu_si256((__m256i *)(lv + 32 * s), q[s]);
      const int8_t *sc = (const int8_t *)(p + 192 + 8 * n);
      for (int g = 0; g < 8; g++) {
        const __m256 a = _mm256_set1_ps(d * (float)sc[g]);
        put8(y + 128 * n + 16 * g, lv + 16 * g, 32, a, zero);
        put8(y + 128 * n + 16 * g + 8, lv + 16 * g + 8, 32, a, zero);
      }
    }
    return 1;
  }
  return 0;
}
#endif
