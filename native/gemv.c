/*
 * y = W x (+ y) for one decode row, row blocks of W shared out on the thread pool with single-threaded
 * OpenBLAS sgemv inside. OpenBLAS's own threaded sgemv splits W statically, so when the machine is busy
 * and its second thread is not scheduled, the call waits for it; here the caller keeps taking blocks
 * until none are left, so a late helper costs nothing and a call is never slower than one thread.
 */
#include <stdatomic.h>
#include <cblas.h>
#include "kernels.h"
#include "pool.h"

/* About 256 KB of W per block: enough work per block to amortize taking it, fine enough to balance. */
#define GEMV_BLOCK_FLOATS (1 << 16)
/* Below this many weights (1 MB) one thread is faster than waking another. */
#define GEMV_PARALLEL_MIN (1 << 18)

typedef struct {
  int n, k, rows_per_block, blocks;
  const float *w, *x;
  float *y;
  float beta;
  atomic_int next;
} GemvJob;

static void gemv_worker(void *arg, int index) {
  (void)index;
  GemvJob *j = arg;
  for (;;) {
    const int b = atomic_fetch_add(&j->next, 1);
    if (b >= j->blocks) break;
    const int r0 = b * j->rows_per_block;
    const int rows = j->n - r0 < j->rows_per_block ? j->n - r0 : j->rows_per_block;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, j->k, 1.0f, j->w + (int64_t)r0 * j->k, j->k, j->x, 1, j->beta,
                j->y + r0, 1);
  }
}

void kv_sgemv(int n, int k, const float *w, const float *x, float *y, int accumulate) {
  GemvJob j = {.n = n, .k = k, .w = w, .x = x, .y = y, .beta = accumulate ? 1.0f : 0.0f};
  int rpb = GEMV_BLOCK_FLOATS / (k > 0 ? k : 1);
  rpb = rpb < 16 ? 16 : (rpb + 15) / 16 * 16;
  j.rows_per_block = rpb;
  j.blocks = (n + rpb - 1) / rpb;
  atomic_init(&j.next, 0);
  int threads = (int64_t)n * k < GEMV_PARALLEL_MIN ? 1 : kv_threads();
  if (threads > j.blocks) threads = j.blocks;
  kv_pool_run_blas1(gemv_worker, &j, threads);
}
