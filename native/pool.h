/* Persistent helper threads for the kernels that OpenBLAS does not parallelize for us (pool.c). */
#ifndef KVEVICT_POOL_H
#define KVEVICT_POOL_H

/* Runs fn(arg, i) for i in 0..n-1, i = 0 on the calling thread; returns when every call has returned.
 * Fewer calls may run if helper threads cannot be created, so fn must take its work from a shared counter. */
void kv_pool_run(void (*fn)(void *, int), void *arg, int n);

#endif
