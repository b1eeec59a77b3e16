/* Persistent helper threads for the kernels that OpenBLAS does not parallelize for us (pool.c). */
#ifndef KVEVICT_POOL_H
#define KVEVICT_POOL_H

#include <stdint.h>

/* Runs fn(arg, i) for i in 0..n-1, i = 0 on the calling thread; returns when every call has returned.
 * Fewer calls may run if helper threads cannot be created, so fn must take its work from a shared counter. */
void kv_pool_run(void (*fn)(void *, int), void *arg, int n);

/* The same, with OpenBLAS single-threaded meanwhile (the pool supplies the parallelism); OpenBLAS gets the
 * thread budget back afterwards. */
void kv_pool_run_blas1(void (*fn)(void *, int), void *arg, int n);

/* Runs range(arg, lo, hi) over [0, n) in blocks of `block`, shared out on the pool (on this thread alone when n
 * is below `serial_below`): the shape of every element-wise kernel that is worth two threads. */
void kv_pool_for(int64_t n, int64_t block, int64_t serial_below, void (*range)(void *, int64_t, int64_t), void *arg);

/* Threads kernels may use: OPENBLAS_NUM_THREADS at load, or what kv_set_threads last set (for OpenBLAS too). */
int kv_threads(void);
void kv_set_threads(int n);

#endif
