/* Row-wise and element-wise kernels: RMSNorm, rotary embedding, SiLU gate. */
#include <math.h>
#include "kernels.h"

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

void kv_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim, float eps) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (int64_t)r * dim;
    float *o = out + (int64_t)r * dim;
    float inv = (float)(1.0 / sqrt((double)sum_squares(xr, dim) / dim + eps));
    for (int i = 0; i < dim; i++) o[i] = xr[i] * inv * weight[i];
  }
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

void kv_silu_mul(float *out, const float *gate, const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + kv_expf(-g)) * up[i];
  }
}
