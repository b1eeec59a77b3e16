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

typedef struct {
  float *e, *ds, *dg, *du;
  const float *inv_in, *dd, *dy, *g, *u;
  float *inv_out;
  int rows, n, m, r0;
  int64_t count;
  int tasks;
  atomic_int next;
} RowJob;

static int visible_of(const RowJob *j, int row) {
  int v = j->r0 + row % j->m + 1;
  return v < j->n ? v : j->n;
}

static void softmax_rows(RowJob *j, int first, int last) {
  for (int row = first; row < last; row++) {
    float *s = j->e + (int64_t)row * j->n;
    const int vis = visible_of(j, row);
    const float sum = kv_exp_shift_sum(s, vis, kv_row_max(s, vis));
    for (int k = vis; k < j->n; k++) s[k] = 0.0f;
    j->inv_out[row] = 1.0f / sum;
  }
}

static void softmax_grad_rows(RowJob *j, int first, int last) {
  for (int row = first; row < last; row++) {
    float *d = j->ds + (int64_t)row * j->n;
    const float *e = j->e + (int64_t)row * j->n;
    const int vis = visible_of(j, row);
    const float f = j->inv_in[row], D = j->dd[row];
    for (int k = 0; k < vis; k++) d[k] = e[k] * f * (d[k] - D);
    for (int k = vis; k < j->n; k++) d[k] = 0.0f;
  }
}

static void silu_grad_range(RowJob *j, int64_t first, int64_t last) {
  for (int64_t i = first; i < last; i++) {
    const float g = j->g[i], sg = 1.0f / (1.0f + kv_expf(-g)), dy = j->dy[i];
    if (j->du) j->du[i] += dy * g * sg;
    if (j->dg) j->dg[i] += dy * j->u[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

static void softmax_worker(void *arg, int index) {
  (void)index;
  RowJob *j = arg;
  for (int t; (t = atomic_fetch_add(&j->next, 1)) < j->tasks;) {
    int a = t * ROWS_PER_TASK, b = a + ROWS_PER_TASK < j->rows ? a + ROWS_PER_TASK : j->rows;
    softmax_rows(j, a, b);
  }
}

static void softmax_grad_worker(void *arg, int index) {
  (void)index;
  RowJob *j = arg;
  for (int t; (t = atomic_fetch_add(&j->next, 1)) < j->tasks;) {
    int a = t * ROWS_PER_TASK, b = a + ROWS_PER_TASK < j->rows ? a + ROWS_PER_TASK : j->rows;
    softmax_grad_rows(j, a, b);
  }
}

#define SILU_CHUNK 16384
static void silu_grad_worker(void *arg, int index) {
  (void)index;
  RowJob *j = arg;
  for (int t; (t = atomic_fetch_add(&j->next, 1)) < j->tasks;) {
    int64_t a = (int64_t)t * SILU_CHUNK, b = a + SILU_CHUNK < j->count ? a + SILU_CHUNK : j->count;
    silu_grad_range(j, a, b);
  }
}

static int threads_for(int64_t work, int tasks) {
  int t = work < PARALLEL_MIN ? 1 : kv_threads();
  return t > tasks ? (tasks > 0 ? tasks : 1) : t;
}

void kv_causal_softmax(float *e, float *inv, int rows, int n, int m, int r0) {
  RowJob j = {.e = e, .inv_out = inv, .rows = rows, .n = n, .m = m, .r0 = r0};
  j.tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
  atomic_init(&j.next, 0);
  kv_pool_run(softmax_worker, &j, threads_for((int64_t)rows * n, j.tasks));
}

void kv_causal_softmax_grad(float *ds, const float *e, const float *inv, const float *dd, int rows, int n, int m,
                            int r0) {
  RowJob j = {.ds = ds, .e = (float *)e, .inv_in = inv, .dd = dd, .rows = rows, .n = n, .m = m, .r0 = r0};
  j.tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
  atomic_init(&j.next, 0);
  kv_pool_run(softmax_grad_worker, &j, threads_for((int64_t)rows * n, j.tasks));
}

void kv_silu_mul_grad(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t count) {
  RowJob j = {.dg = dg, .du = du, .dy = dy, .g = g, .u = u, .count = count};
  j.tasks = (int)((count + SILU_CHUNK - 1) / SILU_CHUNK);
  atomic_init(&j.next, 0);
  kv_pool_run(silu_grad_worker, &j, threads_for(count, j.tasks));
}

/* For each row r and group head g of a [rows * group, width] score block: out[g][j] += softmax over the
 * row's first vis[r] scores, at key j (rows with vis 0 add nothing). s is overwritten. The eviction
 * scorers' column sums of attention (src/press/attention-mass.ts). */
void kv_softmax_rows_accumulate(float *s, int rows, int group, int width, const int32_t *vis, float *out) {
  for (int r = 0; r < rows; r++) {
    const int v = vis[r] < width ? vis[r] : width;
    if (v <= 0) continue;
    for (int g = 0; g < group; g++) {
      float *row = s + ((int64_t)r * group + g) * width;
      const float inv = 1.0f / kv_exp_shift_sum(row, v, kv_row_max(row, v));
      float *o = out + (int64_t)g * width;
      for (int j = 0; j < v; j++) o[j] += row[j] * inv;
    }
  }
}
