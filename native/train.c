/*
 * Row kernels of training's attention and MLP backward (src/autograd/ops): the causal softmax of a score
 * block and its gradient, and the SiLU-gate gradient, with rows shared out on the thread pool in chunks; and
 * the column sums of row softmaxes that the eviction scorers and Judge Q's objective accumulate.
 *
 * A score block holds `rows` = group * m rows of `n` keys: row r is query i = r % m of the block that
 * starts at sequence row r0, and it sees keys 0 .. r0 + i.
 */
#include <math.h>
#include <stdatomic.h>
#include "kernels.h"
#include "pool.h"

#define ROWS_PER_TASK 16
/* Below this many elements a call runs on the calling thread only. */
#define PARALLEL_MIN (1 << 16)

typedef struct RowJob RowJob;
struct RowJob {
  float *e, *ds, *dg, *du;
  const float *inv_in, *dd, *dy, *g, *u;
  float *inv_out;
  int rows, n, m, r0;
  /* cross-entropy: logits [rows, n], per-row targets, weights (forward) or coefficients (backward) */
  const float *logits, *w;
  const int32_t *targets;
  float *lse, *row_loss;
  int32_t *argmax;
  /* the work: items [0, count) in tasks of `chunk` items, each handed to `range` */
  void (*range)(RowJob *j, int64_t first, int64_t last);
  int64_t count, chunk;
  int tasks;
  atomic_int next;
};

static int visible_of(const RowJob *j, int row) {
  int v = j->r0 + row % j->m + 1;
  return v < j->n ? v : j->n;
}

static void softmax_rows(RowJob *j, int64_t first, int64_t last) {
  for (int row = (int)first; row < last; row++) {
    float *s = j->e + (int64_t)row * j->n;
    const int vis = visible_of(j, row);
    const float sum = kv_exp_shift_sum(s, vis, kv_row_max(s, vis));
    for (int k = vis; k < j->n; k++) s[k] = 0.0f;
    j->inv_out[row] = 1.0f / sum;
  }
}

static void softmax_grad_rows(RowJob *j, int64_t first, int64_t last) {
  for (int row = (int)first; row < last; row++) {
    float *d = j->ds + (int64_t)row * j->n;
    const float *e = j->e + (int64_t)row * j->n;
    const int vis = visible_of(j, row);
    const float f = j->inv_in[row], D = j->dd[row];
    for (int k = 0; k < vis; k++) d[k] = e[k] * f * (d[k] - D);
    for (int k = vis; k < j->n; k++) d[k] = 0.0f;
  }
}

static void silu_grad_range(RowJob *j, int64_t first, int64_t last) {
  int64_t i = first;
#ifdef KV_HAVE_EXP8
  /* AVX2: the sigmoids 8 at a time, the rest as below */
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= last; i += 8) {
    const __m256 g = _mm256_loadu_ps(j->g + i), dy = _mm256_loadu_ps(j->dy + i);
    const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, kv_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    if (j->du) _mm256_storeu_ps(j->du + i, _mm256_fmadd_ps(_mm256_mul_ps(dy, g), sg, _mm256_loadu_ps(j->du + i)));
    if (j->dg) {
      const __m256 t = _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one);
      _mm256_storeu_ps(j->dg + i, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(j->u + i)), sg), t, _mm256_loadu_ps(j->dg + i)));
    }
  }
#endif
  for (; i < last; i++) {
    const float g = j->g[i], sg = 1.0f / (1.0f + kv_expf(-g)), dy = j->dy[i];
    if (j->du) j->du[i] += dy * g * sg;
    if (j->dg) j->dg[i] += dy * j->u[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

/* sum_j exp(s[j] - m) without writing s. */
static float exp_shift_sum_ro(const float *s, int n, float m) {
#ifdef __AVX512F__
  const __m512 mv = _mm512_set1_ps(m);
  __m512 a = _mm512_setzero_ps(), b = a;
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    a = _mm512_add_ps(a, kv_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv)));
    b = _mm512_add_ps(b, kv_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j + 16), mv)));
  }
  for (; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
    a = _mm512_add_ps(a, _mm512_maskz_mov_ps(k, kv_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mv))));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
#elif defined(KV_HAVE_EXP8)
  const __m256 mv = _mm256_set1_ps(m);
  __m256 a = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) a = _mm256_add_ps(a, kv_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv)));
  float acc = kv_hsum8(a);
  for (; j < n; j++) acc += kv_expf(s[j] - m);
  return acc;
#else
  float acc = 0.0f;
  for (int j = 0; j < n; j++) acc += kv_expf(s[j] - m);
  return acc;
#endif
}

static void cross_entropy_rows(RowJob *j, int64_t first, int64_t last) {
  const int n = j->n;
  for (int64_t r = first; r < last; r++) {
    const float *l = j->logits + r * n;
    const float max = kv_row_max(l, n);
    int am = 0;
    while (am < n - 1 && !(l[am] == max)) am++;
    j->argmax[r] = am;
    if (j->w[r] == 0.0f) {
      j->lse[r] = 0.0f;
      j->row_loss[r] = 0.0f;
      continue;
    }
    const float lse = max + logf(exp_shift_sum_ro(l, n, max));
    j->lse[r] = lse;
    j->row_loss[r] = lse - l[j->targets[r]];
  }
}

static void cross_entropy_grad_rows(RowJob *j, int64_t first, int64_t last) {
  const int n = j->n;
  for (int64_t r = first; r < last; r++) {
    const float c = j->w[r];
    if (c == 0.0f) continue;
    const float *l = j->logits + r * n;
    float *g = j->e + r * n;
    const float m = j->lse[r];
    int k = 0;
#ifdef __AVX512F__
    const __m512 mv = _mm512_set1_ps(m), cv = _mm512_set1_ps(c);
    for (; k + 16 <= n; k += 16) {
      const __m512 p = kv_exp16(_mm512_sub_ps(_mm512_loadu_ps(l + k), mv));
      _mm512_storeu_ps(g + k, _mm512_fmadd_ps(cv, p, _mm512_loadu_ps(g + k)));
    }
#elif defined(KV_HAVE_EXP8)
    const __m256 mv = _mm256_set1_ps(m), cv = _mm256_set1_ps(c);
    for (; k + 8 <= n; k += 8) {
      const __m256 p = kv_exp8(_mm256_sub_ps(_mm256_loadu_ps(l + k), mv));
      _mm256_storeu_ps(g + k, _mm256_fmadd_ps(cv, p, _mm256_loadu_ps(g + k)));
    }
#endif
    for (; k < n; k++) g[k] += c * kv_expf(l[k] - m);
    g[j->targets[r]] -= c;
  }
}

/* Tasks of the job taken in turn until none is left (so helpers that start late cost nothing). */
static void row_worker(void *arg, int index) {
  (void)index;
  RowJob *j = arg;
  for (int t; (t = atomic_fetch_add(&j->next, 1)) < j->tasks;) {
    const int64_t a = (int64_t)t * j->chunk, b = a + j->chunk < j->count ? a + j->chunk : j->count;
    j->range(j, a, b);
  }
}

#define SILU_CHUNK 16384

/* Run j over `count` items in tasks of `chunk`, on one thread when `work` (elements touched) is small. */
static void run_job(RowJob *j, int64_t count, int64_t chunk, int64_t work) {
  j->count = count;
  j->chunk = chunk;
  j->tasks = (int)((count + chunk - 1) / chunk);
  atomic_init(&j->next, 0);
  int t = work < PARALLEL_MIN ? 1 : kv_threads();
  if (t > j->tasks) t = j->tasks > 0 ? j->tasks : 1;
  kv_pool_run(row_worker, j, t);
}

void kv_causal_softmax(float *e, float *inv, int rows, int n, int m, int r0) {
  RowJob j = {.e = e, .inv_out = inv, .rows = rows, .n = n, .m = m, .r0 = r0, .range = softmax_rows};
  run_job(&j, rows, ROWS_PER_TASK, (int64_t)rows * n);
}

void kv_causal_softmax_grad(float *ds, const float *e, const float *inv, const float *dd, int rows, int n, int m,
                            int r0) {
  RowJob j = {.ds = ds, .e = (float *)e, .inv_in = inv, .dd = dd, .rows = rows, .n = n, .m = m, .r0 = r0, .range = softmax_grad_rows};
  run_job(&j, rows, ROWS_PER_TASK, (int64_t)rows * n);
}

void kv_silu_mul_grad(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t count) {
  RowJob j = {.dg = dg, .du = du, .dy = dy, .g = g, .u = u, .range = silu_grad_range};
  run_job(&j, count, SILU_CHUNK, count);
}

/* For each row r and group head g of a [rows * group, width] score block: the softmax over the row's first
 * vis[r] scores, added into out[g][j] (the eviction scorers' column sums of attention,
 * src/press/attention-mass.ts), or, with take_max, kept where larger (KVzip's most any query attends to an
 * entry). Rows with vis 0 change nothing; s is overwritten. */
static void softmax_rows_reduce(float *s, int rows, int group, int width, const int32_t *vis, float *out, int take_max) {
  for (int r = 0; r < rows; r++) {
    const int v = vis[r] < width ? vis[r] : width;
    if (v <= 0) continue;
    for (int g = 0; g < group; g++) {
      float *row = s + ((int64_t)r * group + g) * width;
      const float inv = 1.0f / kv_exp_shift_sum(row, v, kv_row_max(row, v));
      float *o = out + (int64_t)g * width;
      if (take_max) {
        for (int j = 0; j < v; j++) o[j] = row[j] * inv > o[j] ? row[j] * inv : o[j];
      } else {
        for (int j = 0; j < v; j++) o[j] += row[j] * inv;
      }
    }
  }
}

void kv_softmax_rows_accumulate(float *s, int rows, int group, int width, const int32_t *vis, float *out) {
  softmax_rows_reduce(s, rows, group, width, vis, out, 0);
}

void kv_softmax_rows_max(float *s, int rows, int group, int width, const int32_t *vis, float *out) {
  softmax_rows_reduce(s, rows, group, width, vis, out, 1);
}

void kv_cross_entropy(const float *logits, int rows, int vocab, const int32_t *targets, const float *weights, float *lse,
                      float *row_loss, int32_t *argmax) {
  RowJob j = {.logits = logits, .n = vocab, .targets = targets, .w = weights, .lse = lse, .row_loss = row_loss,
              .argmax = argmax, .range = cross_entropy_rows};
  run_job(&j, rows, 8, (int64_t)rows * vocab);
}

void kv_cross_entropy_grad(float *grad, const float *logits, int rows, int vocab, const int32_t *targets,
                           const float *lse, const float *coef) {
  RowJob j = {.e = grad, .logits = logits, .n = vocab, .targets = targets, .w = coef, .lse = (float *)lse,
              .range = cross_entropy_grad_rows};
  run_job(&j, rows, 8, (int64_t)rows * vocab);
}
