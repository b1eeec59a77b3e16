/*
 * y = W x (+ y) for one decode row: a memory-bound stream over W, so the kernel's job is to read W once at full
 * bandwidth. Row blocks of W are shared out on the thread pool (the caller keeps taking blocks until none are
 * left, so a helper that is not scheduled in time costs nothing and a call is never slower than one thread).
 * Several matrices that share x (q, k, v; gate, up) run as one job: one round of thread synchronization for all.
 * Inside a block, row after row against x held in L1, with AVX-512 FMA where the compiler targets it.
 */
#include <stdatomic.h>
#include <string.h>
#include "kernels.h"
#include "pool.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* About 256 KB of W per block: each thread streams long runs of W (64 KB blocks measured 20-40% slower on two
 * threads), still fine enough to balance them. */
#ifndef GEMV_BLOCK_FLOATS
#define GEMV_BLOCK_FLOATS (1 << 16)
#endif
/* Below this many weights (256 KB) one thread is faster than waking another. */
#define GEMV_PARALLEL_MIN (1 << 16)

/* y[r] (+)= W[r, :] . x for rows [0, rows). One row at a time, front to back: W is read as a single sequential
 * stream, which the hardware prefetchers follow at full speed (interleaving several rows measured about half as
 * fast on AVX-512 Zen); one accumulator per row is enough, the FMA chain is far faster than memory. */
static void gemv_rows(int rows, int k, const float *w, const float *x, float *y, int accumulate) {
#ifdef __AVX512F__
  const int kv = k & ~15;
  const __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1u);
  for (int r = 0; r < rows; r++) {
    const float *wr = w + (int64_t)r * k;
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i < kv; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i), _mm512_loadu_ps(x + i), a);
    if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, wr + i), _mm512_maskz_loadu_ps(tail, x + i), a);
    const float s = _mm512_reduce_add_ps(a);
    y[r] = accumulate ? y[r] + s : s;
  }
#else
  enum { L = 16 };
  for (int r = 0; r < rows; r++) {
    const float *wr = w + (int64_t)r * k;
    float acc[L] = {0};
    int i = 0;
    for (; i + L <= k; i += L)
      for (int l = 0; l < L; l++) acc[l] += wr[i + l] * x[i + l];
    float s = 0.0f;
    for (int l = 0; l < L; l++) s += acc[l];
    for (; i < k; i++) s += wr[i] * x[i];
    y[r] = accumulate ? y[r] + s : s;
  }
#endif
}

typedef struct {
  int count, k, accumulate, rows_per_block, blocks;
  const KvGemvPart *parts;
  int first_block[KV_GEMV_MAX_PARTS + 1];
  const float *x;
  atomic_int next;
} GemvJob;

static void gemv_worker(void *arg, int index) {
  (void)index;
  GemvJob *j = arg;
  for (;;) {
    const int b = atomic_fetch_add(&j->next, 1);
    if (b >= j->blocks) break;
    int p = 0;
    while (b >= j->first_block[p + 1]) p++;
    const KvGemvPart *part = &j->parts[p];
    const int r0 = (b - j->first_block[p]) * j->rows_per_block;
    const int rows = part->n - r0 < j->rows_per_block ? part->n - r0 : j->rows_per_block;
    gemv_rows(rows, j->k, part->w + (int64_t)r0 * j->k, j->x, part->y + r0, j->accumulate);
  }
}

void kv_sgemv_parts(int count, const KvGemvPart *parts, int k, const float *x, int accumulate) {
  if (count <= 0) return;
  if (k == 0) {
    if (!accumulate)
      for (int p = 0; p < count; p++) memset(parts[p].y, 0, sizeof(float) * (size_t)parts[p].n);
    return;
  }
  GemvJob j = {.count = count, .k = k, .accumulate = accumulate, .parts = parts, .x = x};
  int rpb = GEMV_BLOCK_FLOATS / k;
  rpb = rpb < 4 ? 4 : rpb / 4 * 4;
  j.rows_per_block = rpb;
  int64_t total = 0;
  j.first_block[0] = 0;
  for (int p = 0; p < count; p++) {
    j.first_block[p + 1] = j.first_block[p] + (parts[p].n + rpb - 1) / rpb;
    total += (int64_t)parts[p].n * k;
  }
  j.blocks = j.first_block[count];
  atomic_init(&j.next, 0);
  int threads = total < GEMV_PARALLEL_MIN ? 1 : kv_threads();
  if (threads > j.blocks) threads = j.blocks;
  kv_pool_run(gemv_worker, &j, threads);
}

void kv_sgemv(int n, int k, const float *w, const float *x, float *y, int accumulate) {
  const KvGemvPart part = {.n = n, .w = w, .y = y};
  kv_sgemv_parts(1, &part, k, x, accumulate);
}
