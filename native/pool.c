/*
 * A small persistent thread pool: kv_pool_run(fn, arg, n) runs fn(arg, i) for i = 0..n-1 on the caller and
 * up to n-1 helper threads, and returns when all are done. Helpers sleep on a condition variable between
 * jobs, so an idle pool costs nothing; jobs are serialized by a mutex, so concurrent callers are safe.
 * If a helper cannot be created the work still runs (on fewer threads): fn must split work dynamically.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <cblas.h>
#include "pool.h"

#define MAX_HELPERS 63

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t state = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;
static int helpers;             /* helper threads alive */
static unsigned long generation; /* bumped for every job */
static int tickets;             /* helper slots the current job still offers */
static int running;             /* helpers working on the current job */
static void (*job_fn)(void *, int);
static void *job_arg;

static void *helper_main(void *unused) {
  (void)unused;
  unsigned long seen = 0;
  pthread_mutex_lock(&state);
  for (;;) {
    while (generation == seen) pthread_cond_wait(&wake, &state);
    seen = generation;
    if (tickets == 0) continue;
    int index = tickets--;
    void (*fn)(void *, int) = job_fn;
    void *arg = job_arg;
    running++;
    pthread_mutex_unlock(&state);
    fn(arg, index);
    pthread_mutex_lock(&state);
    if (--running == 0 && tickets == 0) pthread_cond_broadcast(&finished);
  }
  return NULL;
}

/* Start helpers until `want` are alive (or creation fails). Called with job_lock held. */
static void grow(int want) {
  if (want > MAX_HELPERS) want = MAX_HELPERS;
  while (helpers < want) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, helper_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    pthread_mutex_lock(&state);
    helpers++;
    pthread_mutex_unlock(&state);
  }
}

void kv_pool_run(void (*fn)(void *, int), void *arg, int n) {
  if (n <= 1) {
    fn(arg, 0);
    return;
  }
  pthread_mutex_lock(&job_lock);
  grow(n - 1);
  pthread_mutex_lock(&state);
  int offered = helpers < n - 1 ? helpers : n - 1;
  job_fn = fn;
  job_arg = arg;
  tickets = offered;
  running = 0;
  generation++;
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&state);

  fn(arg, 0);

  pthread_mutex_lock(&state);
  /* slots no helper picked up yet are withdrawn: fn splits work dynamically, so the caller already did it */
  tickets = 0;
  while (running > 0) pthread_cond_wait(&finished, &state);
  pthread_mutex_unlock(&state);
  pthread_mutex_unlock(&job_lock);
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
