/*
 * The machine's float32 compute ceiling, measured: independent FMA chains on every pool thread, nothing else.
 * Benchmarks say how far each kernel is from this figure, rather than from a nominal one. Beside it, a plain read
 * of a buffer far larger than the caches, each thread summing its own contiguous share: a floor of the memory's
 * rate (streams that fetch ahead, as the decode products do, have run faster).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "kernels.h"
#include "pool.h"

/* 12 chains: more than FMA latency (4 cycles) times FMA throughput, on every core this has met */
#define PEAK_CHAINS 12

typedef struct {
  long iters;
  atomic_llong flops;
  atomic_int sink;
} PeakJob;

static void peak_worker(void *arg, int index) {
  (void)index;
  PeakJob *j = arg;
#ifdef __AVX512F__
  __m512 a[PEAK_CHAINS];
  for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm512_set1_ps(1.0f + (float)c * 1e-7f);
  const __m512 m = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-8f);
  for (long i = 0; i < j->iters; i++)
    for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm512_fmadd_ps(a[c], m, b);
  float s = 0.0f;
  for (int c = 0; c < PEAK_CHAINS; c++) s += _mm512_reduce_add_ps(a[c]);
  atomic_fetch_add(&j->flops, (long long)j->iters * PEAK_CHAINS * 16 * 2);
#else
  float a[PEAK_CHAINS * 8];
  for (int c = 0; c < PEAK_CHAINS * 8; c++) a[c] = 1.0f + (float)c * 1e-7f;
  for (long i = 0; i < j->iters; i++)
    for (int c = 0; c < PEAK_CHAINS * 8; c++) a[c] = a[c] * 0.9999999f + 1e-8f;
  float s = 0.0f;
  for (int c = 0; c < PEAK_CHAINS * 8; c++) s += a[c];
  atomic_fetch_add(&j->flops, (long long)j->iters * PEAK_CHAINS * 8 * 2);
#endif
  atomic_fetch_add(&j->sink, s > 0.0f); /* keeps the loop from being optimized away */
}

/* Seconds of fn run on `threads` pool threads. */
static double timed_run(void (*fn)(void *, int), void *arg, int threads) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  kv_pool_run(fn, arg, threads);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
}

double kv_fma_peak_gflops(int threads, long iters) {
  PeakJob j = {.iters = iters};
  atomic_init(&j.flops, 0);
  atomic_init(&j.sink, 0);
  const double s = timed_run(peak_worker, &j, threads);
  return (double)atomic_load(&j.flops) / s / 1e9;
}

typedef struct {
  const float *p;
  int64_t floats;
  int threads;
  atomic_int sink;
} ReadJob;

static void read_worker(void *arg, int index) {
  ReadJob *j = arg;
  const int64_t share = j->floats / j->threads / 64 * 64, b = share * index;
  const float *p = j->p + b;
  float s = 0.0f;
#ifdef __AVX512F__
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < share; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#else
  float a[16] = {0};
  for (int64_t i = 0; i < share; i += 16)
    for (int l = 0; l < 16; l++) a[l] += p[i + l];
  for (int l = 0; l < 16; l++) s += a[l];
#endif
  atomic_fetch_add(&j->sink, s > 0.0f);
}

double kv_read_peak_gbps(int threads, const float *buf, int64_t floats) {
  ReadJob j = {.p = buf, .floats = floats, .threads = threads};
  atomic_init(&j.sink, 0);
  const double s = timed_run(read_worker, &j, threads);
  return (double)(floats / threads / 64 * 64 * threads) * 4.0 / s / 1e9;
}
