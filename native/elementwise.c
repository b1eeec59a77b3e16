/* Row-wise and element-wise kernels: RMSNorm, rotary embedding, SiLU gate. */
#include <math.h>
#include "kernels.h"
#include "pool.h"

#define LANES 16

/* Sum of squares with LANES independent partial sums, so the compiler can vectorize it. */
static float sum_squares(const float *x, int dim) {
  float acc[LANES] = {0};
  int i = 0;
  for (; i + LANES <= dim; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += x[i + l] * x[i + l];
  float s = 0.0f;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < dim; i++) s += x[i] * x[i];
  return s;
}

/* RMSNorm rows: the forward writes out; the backward reads dy and accumulates dx. */
typedef struct {
  float *out, *dx;
  const float *x, *weight, *dy;
  int dim;
  float eps;
} NormArgs;

static void rmsnorm_rows(void *arg, int64_t lo, int64_t hi) {
  const NormArgs *a = arg;
  const int dim = a->dim;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * dim;
    float *o = a->out + r * dim;
    float inv = (float)(1.0 / sqrt((double)sum_squares(xr, dim) / dim + a->eps));
    for (int i = 0; i < dim; i++) o[i] = xr[i] * inv * a->weight[i];
  }
}

/* dx += s w dy - s^3 / dim (sum_j w_j dy_j x_j) x, s = 1 / rms(x), row by row */
static void rmsnorm_grad_rows(void *arg, int64_t lo, int64_t hi) {
  const NormArgs *a = arg;
  const int dim = a->dim;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * dim, *g = a->dy + r * dim;
    float *d = a->dx + r * dim;
    const float s = (float)(1.0 / sqrt((double)sum_squares(xr, dim) / dim + a->eps));
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= dim; i += LANES)
      for (int l = 0; l < LANES; l++) acc[l] += a->weight[i + l] * g[i + l] * xr[i + l];
    float dot = 0.0f;
    for (int l = 0; l < LANES; l++) dot += acc[l];
    for (; i < dim; i++) dot += a->weight[i] * g[i] * xr[i];
    const float c = s * s * s * dot / dim;
    for (int j = 0; j < dim; j++) d[j] += s * a->weight[j] * g[j] - c * xr[j];
  }
}

/* The RMSNorm backward of training (src/autograd/ops/rmsnorm.ts): dx rows on the pool, then dw += sum over rows
 * of dy x s in one pass on this thread (a reduction over rows, small next to the rows' work). */
void kv_rmsnorm_grad(float *dx, float *dw, const float *dy, const float *x, const float *weight, int rows, int dim, float eps) {
  if (dx) {
    NormArgs a = {.dx = dx, .dy = dy, .x = x, .weight = weight, .dim = dim, .eps = eps};
    const int64_t block = dim > 0 && dim < (1 << 16) ? (1 << 16) / dim : 1;
    kv_pool_for(rows, block, 2 * block, rmsnorm_grad_rows, &a);
  }
  if (dw) {
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * dim, *g = dy + r * dim;
      const float s = (float)(1.0 / sqrt((double)sum_squares(xr, dim) / dim + eps));
      for (int j = 0; j < dim; j++) dw[j] += g[j] * xr[j] * s;
    }
  }
}

/* Rows shared out on the pool in blocks of about 64K values (a prefill chunk); a decode row stays on this thread. */
void kv_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim, float eps) {
  NormArgs a = {.out = out, .x = x, .weight = weight, .dim = dim, .eps = eps};
  const int64_t block = dim > 0 && dim < (1 << 16) ? (1 << 16) / dim : 1;
  kv_pool_for(rows, block, 2 * block, rmsnorm_rows, &a);
}

void kv_rope(float *x, int rows, int heads, int head_dim, const int32_t *positions, const float *cos_t, const float *sin_t) {
  int half = head_dim >> 1;
  for (int r = 0; r < rows; r++) {
    const float *c = cos_t + (int64_t)positions[r] * half;
    const float *s = sin_t + (int64_t)positions[r] * half;
    for (int h = 0; h < heads; h++) {
      float *a = x + ((int64_t)r * heads + h) * head_dim;
      float *b = a + half;
      for (int i = 0; i < half; i++) {
        float x0 = a[i], x1 = b[i];
        a[i] = x0 * c[i] - x1 * s[i];
        b[i] = x1 * c[i] + x0 * s[i];
      }
    }
  }
}

/* silu(g) * u = g * u / (1 + exp(-g)) over [lo, hi). */
static void silu_mul_range(float *out, const float *gate, const float *up, int64_t lo, int64_t hi) {
  int64_t i = lo;
#ifdef __AVX512F__
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= hi; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = kv_exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(out + i, _mm512_div_ps(_mm512_mul_ps(g, _mm512_loadu_ps(up + i)), _mm512_add_ps(one, e)));
  }
#elif defined(KV_HAVE_EXP8)
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= hi; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = kv_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i, _mm256_div_ps(_mm256_mul_ps(g, _mm256_loadu_ps(up + i)), _mm256_add_ps(one, e)));
  }
#endif
  for (; i < hi; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + kv_expf(-g)) * up[i];
  }
}

/* out = a + b elementwise (out may be a: accumulation), on the pool in blocks of 64K: training's residual adds
 * and gradient sums. */
typedef struct {
  float *out;
  const float *a, *b;
} AddArgs;

static void add_range(void *arg, int64_t lo, int64_t hi) {
  AddArgs *s = arg;
  for (int64_t i = lo; i < hi; i++) s->out[i] = s->a[i] + s->b[i];
}

void kv_add(float *out, const float *a, const float *b, int64_t n) {
  AddArgs s = {.out = out, .a = a, .b = b};
  kv_pool_for(n, 1 << 16, 1 << 17, add_range, &s);
}

/* A prefill chunk's SwiGLU is 0.8M values: shared out on the pool in blocks of 64K. */
#define SILU_BLOCK (1 << 16)
typedef struct {
  float *out;
  const float *gate, *up;
} SiluArgs;

static void silu_range(void *arg, int64_t lo, int64_t hi) {
  SiluArgs *s = arg;
  silu_mul_range(s->out, s->gate, s->up, lo, hi);
}

void kv_silu_mul(float *out, const float *gate, const float *up, int64_t n) {
  SiluArgs s = {.out = out, .gate = gate, .up = up};
  kv_pool_for(n, SILU_BLOCK, 2 * SILU_BLOCK, silu_range, &s);
}
