/*
 * A small persistent thread pool: kv_pool_run(fn, arg, n) runs fn(arg, i) for i = 0..n-1 on the caller and
 * up to n-1 helper threads, and returns when all are done. Jobs are serialized by a mutex, so concurrent
 * callers are safe. If a helper cannot be created the work still runs (on fewer threads): fn must split work
 * dynamically.
 *
 * A decode step runs hundreds of short jobs (tens of microseconds each), so waking a sleeping thread for every
 * one (a futex round trip each way) would cost as much as the work. Helpers therefore wait for the next job
 * by polling for a while (KV_POOL_SPIN_US, yielding the core on every poll so that other runnable threads,
 * OpenBLAS's own included, go first) and only then sleep on a condition variable; the caller waits for the
 * helpers the same way. An idle pool still ends up costing nothing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
#include "pool.h"
#if defined(__SSE__)
#include <xmmintrin.h>
/* Denormal floats flushed to zero (FTZ) and read as zero (DAZ) while a kernel runs: an operand below 1e-38 costs
 * a microcode assist of ~100 cycles on Intel cores, and silu of a strongly negative gate makes whole activation
 * vectors that small (a decode product measured 10x slower on them). The caller's own mode (JavaScript's, which
 * needs denormals) is restored on return; helpers run nothing but kernels and keep it set. */
#define FLUSH_DENORMALS 0x8040u
#define DENORMALS_OFF_BEGIN const unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | FLUSH_DENORMALS)
#define DENORMALS_OFF_END _mm_setcsr(saved_csr)
#else
#define DENORMALS_OFF_BEGIN
#define DENORMALS_OFF_END
#endif

#define MAX_HELPERS 63
/* How long an idle helper polls for the next job before it sleeps. */
#ifndef KV_POOL_SPIN_US
#define KV_POOL_SPIN_US 300
#endif

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t state = PTHREAD_MUTEX_INITIALIZER;   /* guards sleeping on `wake` */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int helpers;                     /* helper threads alive (job_lock) */
static atomic_ulong generation;         /* bumped for every job */
static atomic_int tickets;              /* helper slots the current job still offers */
static atomic_int running;              /* helpers inside a job (or about to claim a ticket) */
static atomic_int sleepers;             /* helpers asleep or about to sleep on `wake` */
static void (*_Atomic job_fn)(void *, int);
static void *_Atomic job_arg;
static long spin_ns = (long)KV_POOL_SPIN_US * 1000;

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Take a ticket of the current job and run it; returns when done or when no ticket was left. */
static void try_job(void) {
  atomic_fetch_add(&running, 1);
  int t = atomic_load(&tickets);
  while (t > 0 && !atomic_compare_exchange_weak(&tickets, &t, t - 1)) {
  }
  if (t > 0) {
    void (*fn)(void *, int) = atomic_load(&job_fn);
    void *arg = atomic_load(&job_arg);
    fn(arg, t);
  }
  atomic_fetch_sub(&running, 1);
}

static void *helper_main(void *unused) {
  (void)unused;
#if defined(__SSE__)
  _mm_setcsr(_mm_getcsr() | FLUSH_DENORMALS);
#endif
  unsigned long seen = atomic_load(&generation);
  for (;;) {
    /* poll for a new job, then sleep */
    if (atomic_load(&generation) == seen) {
      const long until = now_ns() + spin_ns;
      int polls = 0;
      while (atomic_load(&generation) == seen) {
        if ((++polls & 15) == 0 && now_ns() > until) break;
        sched_yield();
      }
    }
    if (atomic_load(&generation) == seen) {
      pthread_mutex_lock(&state);
      atomic_fetch_add(&sleepers, 1);
      while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &state);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&state);
    }
    seen = atomic_load(&generation);
    try_job();
  }
  return NULL;
}

/* Start helpers until `want` are alive (or creation fails). Called with job_lock held. */
static void grow(int want) {
  if (want > MAX_HELPERS) want = MAX_HELPERS;
  if (helpers == 0) {
    const char *s = getenv("KVEVICT_POOL_SPIN_US");
    if (s && *s) spin_ns = atol(s) * 1000L;
  }
  while (helpers < want) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, helper_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    helpers++;
  }
}

void kv_pool_run(void (*fn)(void *, int), void *arg, int n) {
  DENORMALS_OFF_BEGIN;
  if (n <= 1) {
    fn(arg, 0);
    DENORMALS_OFF_END;
    return;
  }
  pthread_mutex_lock(&job_lock);
  grow(n - 1);
  const int offered = helpers < n - 1 ? helpers : n - 1;
  atomic_store(&job_fn, fn);
  atomic_store(&job_arg, arg);
  atomic_store(&tickets, offered);
  atomic_fetch_add(&generation, 1);
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&state);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&state);
  }

  fn(arg, 0);

  /* slots no helper picked up yet are withdrawn: fn splits work dynamically, so the caller already did it */
  atomic_store(&tickets, 0);
  for (int polls = 0; atomic_load(&running) > 0; polls++)
    if (polls > 64) sched_yield();
  pthread_mutex_unlock(&job_lock);
  DENORMALS_OFF_END;
}

/* The thread budget: OpenBLAS's setting at load (OPENBLAS_NUM_THREADS), or the last kv_set_threads. Kept here
 * rather than read back from OpenBLAS, which reports 1 while a pooled job runs it single-threaded. */
static atomic_int budget;

int kv_threads(void) {
  int b = atomic_load(&budget);
  if (b == 0) {
    b = openblas_get_num_threads();
    atomic_store(&budget, b);
  }
  return b;
}

void kv_set_threads(int n) {
  atomic_store(&budget, n);
  openblas_set_num_threads(n);
}

void kv_pool_run_blas1(void (*fn)(void *, int), void *arg, int n) {
  const int b = kv_threads();
  if (b > 1) openblas_set_num_threads(1);
  kv_pool_run(fn, arg, n);
  if (b > 1) openblas_set_num_threads(b);
}

typedef struct {
  int64_t n, block;
  void (*range)(void *, int64_t, int64_t);
  void *arg;
  atomic_llong next;
} ForJob;

static void for_worker(void *arg, int index) {
  (void)index;
  ForJob *j = arg;
  for (;;) {
    const int64_t b = atomic_fetch_add(&j->next, j->block);
    if (b >= j->n) break;
    j->range(j->arg, b, b + j->block < j->n ? b + j->block : j->n);
  }
}

void kv_pool_for(int64_t n, int64_t block, int64_t serial_below, void (*range)(void *, int64_t, int64_t), void *arg) {
  if (n <= 0) return;
  if (n < serial_below) {
    DENORMALS_OFF_BEGIN;
    range(arg, 0, n);
    DENORMALS_OFF_END;
    return;
  }
  ForJob j = {.n = n, .block = block, .range = range, .arg = arg};
  atomic_init(&j.next, 0);
  const int64_t blocks = (n + block - 1) / block;
  const int threads = kv_threads();
  kv_pool_run(for_worker, &j, blocks < threads ? (int)blocks : threads);
}
