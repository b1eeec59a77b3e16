/*
 * Causal softmax attention of one GQA group against one KV head, on OpenBLAS.
 *
 * Prefill: blocks of query rows; the group's queries of a block are gathered into one [rows*group, d]
 * matrix, scored against the keys in chunks with sgemm, and the softmax runs online across chunks
 * (running max and sum per row, as in FlashAttention), so scratch stays O(block * chunk) for any context.
 * Keys are sorted by position, so the keys a row sees are a prefix; a block only touches the prefix up to
 * its largest query position, and masks per row only in the chunks past its smallest one.
 * Decode (one row): sgemv per head, since OpenBLAS runs sgemm with a tiny M several times slower.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "kernels.h"

#define LANES 16

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

static float row_max(const float *s, int n) {
  float acc[LANES];
  for (int l = 0; l < LANES; l++) acc[l] = -INFINITY;
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) acc[l] = s[j + l] > acc[l] ? s[j + l] : acc[l];
  float m = -INFINITY;
  for (int l = 0; l < LANES; l++) m = acc[l] > m ? acc[l] : m;
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
}

/* s[j] = exp(s[j] - m) for j < n; returns the sum. */
static float exp_shift_sum(float *s, int n, float m) {
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
}

/* One query row (decode): per head, scores = K q, softmax, out = V^T p. */
static int attend_one_row(const float *q, float *out, int d, int group, int32_t pos,
                          const float *keys, const float *values, const int32_t *k_pos, int n, float scale) {
  int nv = visible_prefix(k_pos, n, pos);
  if (nv == 0) {
    memset(out, 0, sizeof(float) * (size_t)group * d);
    return 0;
  }
  float *s = malloc(sizeof(float) * (size_t)nv);
  if (!s) return -1;
  for (int g = 0; g < group; g++) {
    const float *qg = q + (int64_t)g * d;
    float *og = out + (int64_t)g * d;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, nv, d, scale, keys, d, qg, 1, 0.0f, s, 1);
    float m = row_max(s, nv);
    float sum = exp_shift_sum(s, nv, m);
    /* og may alias qg: qg is not read again for this head */
    cblas_sgemv(CblasRowMajor, CblasTrans, nv, d, 1.0f / sum, values, d, s, 1, 0.0f, og, 1);
  }
  free(s);
  return 0;
}

int kv_attend_head(const float *q, int64_t q_row_stride, float *out, int rows, int d, int first_head, int group,
                   const int32_t *q_pos, const float *keys, const float *values, const int32_t *k_pos, int n,
                   float scale) {
  if (rows <= 0 || group <= 0 || d <= 0) return 0;
  const int64_t head_off = (int64_t)first_head * d;
  if (rows == 1)
    return attend_one_row(q + head_off, out + head_off, d, group, q_pos[0], keys, values, k_pos, n, scale);

  const int rb = rows < KV_ATTEND_ROW_BLOCK ? rows : KV_ATTEND_ROW_BLOCK;
  const int max_m = rb * group;
  const int kc_max = KV_ATTEND_KEY_CHUNK;
  const size_t gd = (size_t)group * d;
  float *qb = malloc(sizeof(float) * (size_t)max_m * d);
  float *ob = malloc(sizeof(float) * (size_t)max_m * d);
  float *sc = malloc(sizeof(float) * (size_t)max_m * kc_max);
  float *run_max = malloc(sizeof(float) * (size_t)max_m);
  float *run_sum = malloc(sizeof(float) * (size_t)max_m);
  int *vis = malloc(sizeof(int) * (size_t)rb);
  int rc = 0;
  if (!qb || !ob || !sc || !run_max || !run_sum || !vis) {
    rc = -1;
    goto done;
  }

  for (int r0 = 0; r0 < rows; r0 += rb) {
    const int br = rows - r0 < rb ? rows - r0 : rb;
    const int m_rows = br * group;
    int32_t pmin = q_pos[r0], pmax = q_pos[r0];
    for (int i = 0; i < br; i++) {
      int32_t p = q_pos[r0 + i];
      if (p < pmin) pmin = p;
      if (p > pmax) pmax = p;
    }
    const int nv = visible_prefix(k_pos, n, pmax);
    const int n_all = visible_prefix(k_pos, n, pmin);
    if (nv == 0) {
      for (int i = 0; i < br; i++) memset(out + (r0 + i) * q_row_stride + head_off, 0, sizeof(float) * gd);
      continue;
    }
    /* the group's heads are adjacent in a row, so each row contributes one contiguous [group, d] slab */
    for (int i = 0; i < br; i++) memcpy(qb + (size_t)i * gd, q + (r0 + i) * q_row_stride + head_off, sizeof(float) * gd);
    for (int i = 0; i < br; i++) vis[i] = nv > n_all ? visible_prefix(k_pos, nv, q_pos[r0 + i]) : nv;
    for (int m = 0; m < m_rows; m++) {
      run_max[m] = -INFINITY;
      run_sum[m] = 0.0f;
    }

    for (int c0 = 0; c0 < nv; c0 += kc_max) {
      const int kc = nv - c0 < kc_max ? nv - c0 : kc_max;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m_rows, kc, d, scale, qb, d,
                  keys + (int64_t)c0 * d, d, 0.0f, sc, kc);
      for (int m = 0; m < m_rows; m++) {
        float *s = sc + (size_t)m * kc;
        int cnt = vis[m / group] - c0;
        if (cnt > kc) cnt = kc;
        if (cnt <= 0) {
          memset(s, 0, sizeof(float) * (size_t)kc);
          continue;
        }
        float cm = row_max(s, cnt);
        float old = run_max[m];
        float nm = cm > old ? cm : old;
        float sum = exp_shift_sum(s, cnt, nm);
        if (cnt < kc) memset(s + cnt, 0, sizeof(float) * (size_t)(kc - cnt));
        if (old == -INFINITY) {
          run_sum[m] = sum;
        } else {
          float corr = kv_expf(old - nm);
          run_sum[m] = run_sum[m] * corr + sum;
          if (corr != 1.0f) {
            float *o = ob + (size_t)m * d;
            for (int t = 0; t < d; t++) o[t] *= corr;
          }
        }
        run_max[m] = nm;
      }
      /* first chunk overwrites ob (rows that see nothing get zero weights there) */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m_rows, d, kc, 1.0f, sc, kc,
                  values + (int64_t)c0 * d, d, c0 == 0 ? 0.0f : 1.0f, ob, d);
    }

    for (int i = 0; i < br; i++) {
      float *dst = out + (r0 + i) * q_row_stride + head_off;
      for (int g = 0; g < group; g++) {
        const int m = i * group + g;
        const float inv = run_sum[m] > 0.0f ? 1.0f / run_sum[m] : 0.0f;
        const float *o = ob + (size_t)m * d;
        for (int t = 0; t < d; t++) dst[(size_t)g * d + t] = o[t] * inv;
      }
    }
  }

done:
  free(qb);
  free(ob);
  free(sc);
  free(run_max);
  free(run_sum);
  free(vis);
  return rc;
}
