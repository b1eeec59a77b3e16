/*
 * N-API bindings: argument checking and dispatch to OpenBLAS and the kernels in kernels.h.
 * Every array is bounds-checked against the sizes it will be read or written with, so a wrong call
 * throws a RangeError in JavaScript instead of touching memory outside the array.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise */
#define NAPI_VERSION 8
#include <node_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cblas.h>
#include "kernels.h"
#include "pool.h"

#define MAX_ARGS 16

typedef struct {
  napi_env env;
  napi_value argv[MAX_ARGS];
  size_t argc;
  const char *fn;
  bool failed;
} Args;

static void fail(Args *a, const char *what) {
  if (a->failed) return;
  a->failed = true;
  char msg[256];
  snprintf(msg, sizeof msg, "kvevict_native.%s: %s", a->fn, what);
  napi_throw_range_error(a->env, NULL, msg);
}

static bool get_args(napi_env env, napi_callback_info info, Args *a, const char *fn, size_t want) {
  a->env = env;
  a->fn = fn;
  a->failed = false;
  a->argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok) {
    fail(a, "cannot read arguments");
    return false;
  }
  if (a->argc < want) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, a->argc);
    fail(a, msg);
    return false;
  }
  return true;
}

static int64_t arg_int(Args *a, size_t i, const char *name) {
  double v = 0;
  if (a->failed) return 0;
  if (napi_get_value_double(a->env, a->argv[i], &v) != napi_ok || !(fabs(v) < 9.0e15) || v != (double)(int64_t)v) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer", name);
    fail(a, msg);
    return 0;
  }
  return (int64_t)v;
}

static int64_t arg_count(Args *a, size_t i, const char *name) {
  int64_t v = arg_int(a, i, name);
  if (!a->failed && (v < 0 || v > INT32_MAX)) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be in [0, 2^31), got %lld", name, (long long)v);
    fail(a, msg);
  }
  return v;
}

static double arg_num(Args *a, size_t i, const char *name) {
  double v = 0;
  if (a->failed) return 0;
  if (napi_get_value_double(a->env, a->argv[i], &v) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    fail(a, msg);
  }
  return v;
}

static bool arg_bool(Args *a, size_t i) {
  bool v = false;
  if (a->failed || i >= a->argc) return false;
  napi_valuetype t;
  napi_typeof(a->env, a->argv[i], &t);
  if (t == napi_undefined) return false;
  napi_value b;
  napi_coerce_to_bool(a->env, a->argv[i], &b);
  napi_get_value_bool(a->env, b, &v);
  return v;
}

/* Argument i as a typed array: its element type, length and data (already offset by the view's byteOffset). */
static bool typed_array(Args *a, size_t i, napi_typedarray_type *t, size_t *len, void **data) {
  bool is_ta = false;
  return napi_is_typedarray(a->env, a->argv[i], &is_ta) == napi_ok && is_ta &&
         napi_get_typedarray_info(a->env, a->argv[i], t, len, data, NULL, NULL) == napi_ok;
}

/* Fails unless an array of `len` elements holds the `need` a call will touch. */
static bool long_enough(Args *a, const char *name, size_t len, int64_t need) {
  if ((int64_t)len >= need) return true;
  char msg[128];
  snprintf(msg, sizeof msg, "%s has %zu elements, needs %lld", name, len, (long long)need);
  fail(a, msg);
  return false;
}

/* A typed array of `type` with at least `need` elements; returns a pointer to its first element. */
static void *arg_array(Args *a, size_t i, const char *name, napi_typedarray_type type, int64_t need) {
  if (a->failed) return NULL;
  napi_typedarray_type t;
  size_t len = 0;
  void *data = NULL;
  if (!typed_array(a, i, &t, &len, &data) || t != type) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a %s", name,
             type == napi_float32_array  ? "Float32Array"
             : type == napi_uint16_array ? "Uint16Array"
             : type == napi_uint8_array  ? "Uint8Array"
                                         : "Int32Array");
    fail(a, msg);
    return NULL;
  }
  return long_enough(a, name, len, need) ? data : NULL;
}

/* A weight matrix of at least `need` elements: a Float32Array (*w) or a Uint16Array of IEEE halves (*h). */
static bool arg_weights(Args *a, size_t i, const char *name, int64_t need, const float **w, const uint16_t **h) {
  *w = NULL;
  *h = NULL;
  if (a->failed) return false;
  napi_typedarray_type t;
  size_t len = 0;
  void *data = NULL;
  if (!typed_array(a, i, &t, &len, &data) || (t != napi_float32_array && t != napi_uint16_array)) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a Float32Array or a Uint16Array of f16 bits", name);
    fail(a, msg);
    return false;
  }
  if (!long_enough(a, name, len, need)) return false;
  if (t == napi_float32_array) *w = data;
  else *h = data;
  return true;
}

/* Elements a row-major [rows, cols] matrix with row stride ld spans. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

static void check_ld(Args *a, int64_t ld, int64_t cols, const char *name) {
  if (a->failed) return;
  if (ld < (cols > 1 ? cols : 1)) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s = %lld is below the row width %lld", name, (long long)ld, (long long)cols);
    fail(a, msg);
  }
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) */
static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "sgemm", 13)) return NULL;
  bool ta = arg_bool(&a, 0), tb = arg_bool(&a, 1);
  int64_t m = arg_count(&a, 2, "m"), n = arg_count(&a, 3, "n"), k = arg_count(&a, 4, "k");
  float alpha = (float)arg_num(&a, 5, "alpha");
  int64_t lda = arg_count(&a, 7, "lda"), ldb = arg_count(&a, 9, "ldb"), ldc = arg_count(&a, 12, "ldc");
  float beta = (float)arg_num(&a, 10, "beta");
  int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  check_ld(&a, lda, a_cols, "lda");
  check_ld(&a, ldb, b_cols, "ldb");
  check_ld(&a, ldc, n, "ldc");
  const float *pa = arg_array(&a, 6, "a", napi_float32_array, span(a_rows, a_cols, lda));
  const float *pb = arg_array(&a, 8, "b", napi_float32_array, span(b_rows, b_cols, ldb));
  float *pc = arg_array(&a, 11, "c", napi_float32_array, span(m, n, ldc));
  if (a.failed) return NULL;
  if (m == 0 || n == 0) return undefined(env);
  if (k == 0) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) pc[i * ldc + j] = beta == 0.0f ? 0.0f : beta * pc[i * ldc + j];
    return undefined(env);
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, pa, (int)lda, pb, (int)ldb, beta, pc, (int)ldc);
  return undefined(env);
}

/* sgemv(n, k, w, x, y, accumulate) */
static napi_value js_sgemv(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "sgemv", 5)) return NULL;
  int64_t n = arg_count(&a, 0, "n"), k = arg_count(&a, 1, "k");
  KvGemvPart part = {.n = (int)n};
  arg_weights(&a, 2, "w", n * k, &part.w, &part.h);
  const float *x = arg_array(&a, 3, "x", napi_float32_array, k);
  part.y = arg_array(&a, 4, "y", napi_float32_array, n);
  bool acc = arg_bool(&a, 5);
  if (a.failed) return NULL;
  if (n == 0) return undefined(env);
  if (k == 0) {
    if (!acc) memset(part.y, 0, sizeof(float) * (size_t)n);
    return undefined(env);
  }
  kv_sgemv_parts(1, &part, (int)k, x, acc);
  return undefined(env);
}

/* rmsnorm(out, x, weight, rows, dim, eps) */
static napi_value js_rmsnorm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "rmsnorm", 6)) return NULL;
  int64_t rows = arg_count(&a, 3, "rows"), dim = arg_count(&a, 4, "dim");
  float eps = (float)arg_num(&a, 5, "eps");
  float *out = arg_array(&a, 0, "out", napi_float32_array, rows * dim);
  const float *x = arg_array(&a, 1, "x", napi_float32_array, rows * dim);
  const float *w = arg_array(&a, 2, "weight", napi_float32_array, dim);
  if (a.failed) return NULL;
  if (dim > 0) kv_rmsnorm(out, x, w, (int)rows, (int)dim, eps);
  return undefined(env);
}

/* rmsnormGrad(dx | null, dw | null, dy, x, weight, rows, dim, eps) */
static napi_value js_rmsnorm_grad(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "rmsnormGrad", 8)) return NULL;
  int64_t rows = arg_count(&a, 5, "rows"), dim = arg_count(&a, 6, "dim");
  float eps = (float)arg_num(&a, 7, "eps");
  napi_valuetype t0, t1;
  napi_typeof(env, a.argv[0], &t0);
  napi_typeof(env, a.argv[1], &t1);
  float *dx = t0 == napi_null ? NULL : arg_array(&a, 0, "dx", napi_float32_array, rows * dim);
  float *dw = t1 == napi_null ? NULL : arg_array(&a, 1, "dw", napi_float32_array, dim);
  const float *dy = arg_array(&a, 2, "dy", napi_float32_array, rows * dim);
  const float *x = arg_array(&a, 3, "x", napi_float32_array, rows * dim);
  const float *w = arg_array(&a, 4, "weight", napi_float32_array, dim);
  if (a.failed) return NULL;
  if (dim > 0 && rows > 0) kv_rmsnorm_grad(dx, dw, dy, x, w, (int)rows, (int)dim, eps);
  return undefined(env);
}

/* rope(x, rows, heads, headDim, positions, cos, sin) */
static napi_value js_rope(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "rope", 7)) return NULL;
  int64_t rows = arg_count(&a, 1, "rows"), heads = arg_count(&a, 2, "heads"), hd = arg_count(&a, 3, "headDim");
  float *x = arg_array(&a, 0, "x", napi_float32_array, rows * heads * hd);
  const int32_t *pos = arg_array(&a, 4, "positions", napi_int32_array, rows);
  const float *c = arg_array(&a, 5, "cos", napi_float32_array, 0);
  const float *s = arg_array(&a, 6, "sin", napi_float32_array, 0);
  if (a.failed) return NULL;
  size_t clen = 0, slen = 0;
  napi_get_typedarray_info(env, a.argv[5], NULL, &clen, NULL, NULL, NULL);
  napi_get_typedarray_info(env, a.argv[6], NULL, &slen, NULL, NULL, NULL);
  int64_t table = (int64_t)(clen < slen ? clen : slen), half = hd / 2;
  for (int64_t r = 0; r < rows; r++) {
    if (pos[r] < 0 || ((int64_t)pos[r] + 1) * half > table) {
      char msg[128];
      snprintf(msg, sizeof msg, "position %d of row %lld is outside the cos/sin tables", pos[r], (long long)r);
      fail(&a, msg);
      return NULL;
    }
  }
  kv_rope(x, (int)rows, (int)heads, (int)hd, pos, c, s);
  return undefined(env);
}

/* The element-wise kernels of three float32 arrays of n values: out = f(a, b). */
static napi_value elementwise3(napi_env env, napi_callback_info info, const char *fn, const char *names[3],
                               void (*kernel)(float *, const float *, const float *, int64_t)) {
  Args a;
  if (!get_args(env, info, &a, fn, 4)) return NULL;
  int64_t n = arg_int(&a, 3, "n");
  if (!a.failed && n < 0) fail(&a, "n must be >= 0");
  float *out = arg_array(&a, 0, names[0], napi_float32_array, n);
  const float *x = arg_array(&a, 1, names[1], napi_float32_array, n);
  const float *y = arg_array(&a, 2, names[2], napi_float32_array, n);
  if (a.failed) return NULL;
  kernel(out, x, y, n);
  return undefined(env);
}

/* siluMul(out, gate, up, n) */
static napi_value js_silu_mul(napi_env env, napi_callback_info info) {
  static const char *names[3] = {"out", "gate", "up"};
  return elementwise3(env, info, "siluMul", names, kv_silu_mul);
}

/* add(out, a, b, n): out = a + b (out may be a) */
static napi_value js_add(napi_env env, napi_callback_info info) {
  static const char *names[3] = {"out", "a", "b"};
  return elementwise3(env, info, "add", names, kv_add);
}

/* copyRows(dst, dstOffset, src, srcOffset, srcStride, rows, width): a strided block of rows into a compact one,
 * dst[dstOffset + r * width + i] = src[srcOffset + r * srcStride + i] (a KV head's new rows joining its cache). */
static napi_value js_copy_rows(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "copyRows", 7)) return NULL;
  const int64_t dst_off = arg_count(&a, 1, "dstOffset"), src_off = arg_count(&a, 3, "srcOffset");
  const int64_t stride = arg_count(&a, 4, "srcStride"), rows = arg_count(&a, 5, "rows"), width = arg_count(&a, 6, "width");
  if (!a.failed && rows > 0 && stride < width) fail(&a, "srcStride must be >= width");
  const int64_t src_need = rows > 0 ? src_off + (rows - 1) * stride + width : 0;
  /* dst float32, or IEEE halves (an f16 cache: each row rounded to the nearest half) */
  const float *dst_f;
  const uint16_t *dst_h;
  arg_weights(&a, 0, "dst", dst_off + rows * width, &dst_f, &dst_h);
  const float *src = arg_array(&a, 2, "src", napi_float32_array, src_need);
  if (a.failed) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    if (dst_h) kv_narrow_floats(width, src + src_off + r * stride, (uint16_t *)dst_h + dst_off + r * width);
    else memcpy((float *)dst_f + dst_off + r * width, src + src_off + r * stride, sizeof(float) * (size_t)width);
  }
  return undefined(env);
}

/* packWeights(w, n, k, out): W[n, k] into the layout of sgemmPacked (out holds packedFloats(n, k) elements);
 * float32 into a Float32Array, or f16 bits (Uint16Array) into a Uint16Array. */
static napi_value js_pack_weights(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "packWeights", 4)) return NULL;
  const int64_t n = arg_count(&a, 1, "n"), k = arg_count(&a, 2, "k");
  const float *w;
  const uint16_t *wh;
  arg_weights(&a, 0, "w", n * k, &w, &wh);
  void *out = arg_array(&a, 3, "out", wh ? napi_uint16_array : napi_float32_array, a.failed ? 0 : kv_packed_floats((int)n, (int)k));
  if (a.failed) return NULL;
  if (wh) kv_pack_weights_half(wh, (int)n, (int)k, out);
  else kv_pack_weights(w, (int)n, (int)k, out);
  return undefined(env);
}

/* The packed product of sgemmPacked and sgemmPackedParts, once their other arguments are read: argument `at` is
 * the packed weights (float32 or f16 bits), which the parts need back to back. */
static napi_value run_packed(Args *a, size_t at, int64_t m, int64_t k, const float *x, int64_t ldx, int parts, const int *n,
                             float *const *c, const int64_t *ldc, int accumulate) {
  int64_t need = 0;
  for (int p = 0; p < parts && !a->failed; p++) need += kv_packed_floats(n[p], (int)k);
  const float *packed;
  const uint16_t *packed_h;
  arg_weights(a, at, "packed", need, &packed, &packed_h);
  if (a->failed) return NULL;
  if (kv_sgemm_packed_parts((int)m, (int)k, x, ldx, packed_h ? (const void *)packed_h : packed, packed_h != NULL, parts, n, c, ldc, accumulate) != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "kvevict_native.%s: out of memory", a->fn);
    napi_throw_error(a->env, NULL, msg);
    return NULL;
  }
  return undefined(a->env);
}

/* sgemmPacked(m, n, k, x, ldx, packed, c, ldc, accumulate): C[m, n] (+)= X[m, k] . W^T, W packed by packWeights. */
static napi_value js_sgemm_packed(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "sgemmPacked", 9)) return NULL;
  const int64_t m = arg_count(&a, 0, "m"), n = arg_count(&a, 1, "n"), k = arg_count(&a, 2, "k");
  const int64_t ldx = arg_count(&a, 4, "ldx"), ldc = arg_count(&a, 7, "ldc");
  check_ld(&a, ldx, k, "ldx");
  check_ld(&a, ldc, n, "ldc");
  const float *x = arg_array(&a, 3, "x", napi_float32_array, span(m, k, ldx));
  float *c = arg_array(&a, 6, "c", napi_float32_array, span(m, n, ldc));
  const int accumulate = arg_bool(&a, 8);
  const int n32 = (int)n;
  return run_packed(&a, 5, m, k, x, ldx, 1, &n32, &c, &ldc, accumulate);
}

/* sgemmPackedParts(m, k, x, ldx, packed, accumulate, n0, c0 [, n1, c1 ...]): up to KV_GEMM_MAX_PARTS outputs
 * C_p[m, n_p] (+)= X . W_p^T from the parts' packed weights stored back to back in `packed`. */
static napi_value js_sgemm_packed_parts(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "sgemmPackedParts", 8)) return NULL;
  const int64_t m = arg_count(&a, 0, "m"), k = arg_count(&a, 1, "k"), ldx = arg_count(&a, 3, "ldx");
  check_ld(&a, ldx, k, "ldx");
  const float *x = arg_array(&a, 2, "x", napi_float32_array, span(m, k, ldx));
  const int accumulate = arg_bool(&a, 5);
  if (!a.failed && (a.argc - 6) % 2 != 0) fail(&a, "parts come in pairs: n, c");
  const int count = (int)((a.argc - 6) / 2);
  if (!a.failed && count > KV_GEMM_MAX_PARTS) fail(&a, "too many parts");
  int n[KV_GEMM_MAX_PARTS];
  float *c[KV_GEMM_MAX_PARTS];
  int64_t ldc[KV_GEMM_MAX_PARTS];
  for (int p = 0; p < count && !a.failed; p++) {
    const int64_t np = arg_count(&a, 6 + 2 * p, "n");
    c[p] = arg_array(&a, 7 + 2 * p, "c", napi_float32_array, m * np);
    n[p] = (int)np, ldc[p] = np;
  }
  return run_packed(&a, 4, m, k, x, ldx, count, n, c, ldc, accumulate);
}

/* attendHead(q, qRowStride, out, rows, headDim, firstHead, group, qPos, keys, values, kPos, n, scale) */
static napi_value js_attend_head(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "attendHead", 13)) return NULL;
  int64_t stride = arg_count(&a, 1, "qRowStride"), rows = arg_count(&a, 3, "rows"), d = arg_count(&a, 4, "headDim");
  int64_t first = arg_count(&a, 5, "firstHead"), group = arg_count(&a, 6, "group"), n = arg_count(&a, 11, "n");
  float scale = (float)arg_num(&a, 12, "scale");
  int64_t width = (first + group) * d;
  check_ld(&a, stride, width, "qRowStride");
  const float *q = arg_array(&a, 0, "q", napi_float32_array, span(rows, width, stride));
  float *out = arg_array(&a, 2, "out", napi_float32_array, span(rows, width, stride));
  const int32_t *qpos = arg_array(&a, 7, "qPos", napi_int32_array, rows);
  /* keys and values: both float32, or both IEEE half bits (an f16 cache) */
  const float *kf, *vf;
  const uint16_t *kh, *vh;
  arg_weights(&a, 8, "keys", n * d, &kf, &kh);
  arg_weights(&a, 9, "values", n * d, &vf, &vh);
  if (!a.failed && !kf != !vf) fail(&a, "keys and values must both be Float32Arrays or both Uint16Arrays");
  const int32_t *kpos = arg_array(&a, 10, "kPos", napi_int32_array, n);
  if (a.failed) return NULL;
  const void *keys = kf ? (const void *)kf : kh, *values = vf ? (const void *)vf : vh;
  if (kv_attend_head(q, stride, out, (int)rows, (int)d, (int)first, (int)group, qpos, keys, values, kh != NULL, kpos,
                     (int)n, scale) != 0) {
    fail(&a, "out of memory for attention scratch");
    return NULL;
  }
  return undefined(env);
}

/* Checks shared by the causal softmax kernels: rows, n, m, r0 at positions i .. i+3. */
static bool softmax_dims(Args *a, size_t i, int64_t *rows, int64_t *n, int64_t *m, int64_t *r0) {
  *rows = arg_count(a, i, "rows");
  *n = arg_count(a, i + 1, "n");
  *m = arg_count(a, i + 2, "m");
  *r0 = arg_count(a, i + 3, "r0");
  if (!a->failed && *m < 1) fail(a, "m must be >= 1");
  if (!a->failed && *rows * *n > INT64_MAX / 2) fail(a, "rows * n is too large");
  return !a->failed;
}

/* causalSoftmax(e, inv, rows, n, m, r0) */
static napi_value js_causal_softmax(napi_env env, napi_callback_info info) {
  Args a;
  int64_t rows, n, m, r0;
  if (!get_args(env, info, &a, "causalSoftmax", 6) || !softmax_dims(&a, 2, &rows, &n, &m, &r0)) return NULL;
  float *e = arg_array(&a, 0, "e", napi_float32_array, rows * n);
  float *inv = arg_array(&a, 1, "inv", napi_float32_array, rows);
  if (a.failed) return NULL;
  if (rows > 0 && n > 0) kv_causal_softmax(e, inv, (int)rows, (int)n, (int)m, (int)r0);
  return undefined(env);
}

/* causalSoftmaxGrad(dS, e, inv, dd, rows, n, m, r0) */
static napi_value js_causal_softmax_grad(napi_env env, napi_callback_info info) {
  Args a;
  int64_t rows, n, m, r0;
  if (!get_args(env, info, &a, "causalSoftmaxGrad", 8) || !softmax_dims(&a, 4, &rows, &n, &m, &r0)) return NULL;
  float *ds = arg_array(&a, 0, "dS", napi_float32_array, rows * n);
  const float *e = arg_array(&a, 1, "e", napi_float32_array, rows * n);
  const float *inv = arg_array(&a, 2, "inv", napi_float32_array, rows);
  const float *dd = arg_array(&a, 3, "dd", napi_float32_array, rows);
  if (a.failed) return NULL;
  if (rows > 0 && n > 0) kv_causal_softmax_grad(ds, e, inv, dd, (int)rows, (int)n, (int)m, (int)r0);
  return undefined(env);
}

/* softmaxRowsAccumulate(s, rows, group, width, vis, out) and softmaxRowsMax(...): the same arguments */
static napi_value softmax_rows_binding(napi_env env, napi_callback_info info, const char *name,
                                       void (*kernel)(float *, int, int, int, const int32_t *, float *)) {
  Args a;
  if (!get_args(env, info, &a, name, 6)) return NULL;
  int64_t rows = arg_count(&a, 1, "rows"), group = arg_count(&a, 2, "group"), width = arg_count(&a, 3, "width");
  float *s = arg_array(&a, 0, "s", napi_float32_array, rows * group * width);
  const int32_t *vis = arg_array(&a, 4, "vis", napi_int32_array, rows);
  float *out = arg_array(&a, 5, "out", napi_float32_array, group * width);
  if (a.failed) return NULL;
  if (width > 0) kernel(s, (int)rows, (int)group, (int)width, vis, out);
  return undefined(env);
}

static napi_value js_softmax_rows_accumulate(napi_env env, napi_callback_info info) {
  return softmax_rows_binding(env, info, "softmaxRowsAccumulate", kv_softmax_rows_accumulate);
}

static napi_value js_softmax_rows_max(napi_env env, napi_callback_info info) {
  return softmax_rows_binding(env, info, "softmaxRowsMax", kv_softmax_rows_max);
}

/* Checks shared by the cross-entropy kernels: rows, vocab at positions i, i + 1 and targets in range. */
static bool cross_entropy_dims(Args *a, size_t i, int64_t *rows, int64_t *vocab) {
  *rows = arg_count(a, i, "rows");
  *vocab = arg_count(a, i + 1, "vocab");
  if (!a->failed && *vocab < 1) fail(a, "vocab must be >= 1");
  if (!a->failed && *rows * *vocab > INT64_MAX / 2) fail(a, "rows * vocab is too large");
  return !a->failed;
}

static bool targets_in_range(Args *a, const int32_t *t, int64_t rows, int64_t vocab) {
  if (a->failed) return false;
  for (int64_t r = 0; r < rows; r++) {
    if (t[r] < 0 || t[r] >= vocab) {
      fail(a, "targets must lie in [0, vocab)");
      return false;
    }
  }
  return true;
}

/* crossEntropy(logits, rows, vocab, targets, weights, lse, rowLoss, argmax) */
static napi_value js_cross_entropy(napi_env env, napi_callback_info info) {
  Args a;
  int64_t rows, vocab;
  if (!get_args(env, info, &a, "crossEntropy", 8) || !cross_entropy_dims(&a, 1, &rows, &vocab)) return NULL;
  const float *logits = arg_array(&a, 0, "logits", napi_float32_array, rows * vocab);
  const int32_t *targets = arg_array(&a, 3, "targets", napi_int32_array, rows);
  const float *weights = arg_array(&a, 4, "weights", napi_float32_array, rows);
  float *lse = arg_array(&a, 5, "lse", napi_float32_array, rows);
  float *loss = arg_array(&a, 6, "rowLoss", napi_float32_array, rows);
  int32_t *argmax = arg_array(&a, 7, "argmax", napi_int32_array, rows);
  if (!targets_in_range(&a, targets, rows, vocab)) return NULL;
  if (rows > 0) kv_cross_entropy(logits, (int)rows, (int)vocab, targets, weights, lse, loss, argmax);
  return undefined(env);
}

/* crossEntropyGrad(grad, logits, rows, vocab, targets, lse, coef) */
static napi_value js_cross_entropy_grad(napi_env env, napi_callback_info info) {
  Args a;
  int64_t rows, vocab;
  if (!get_args(env, info, &a, "crossEntropyGrad", 7) || !cross_entropy_dims(&a, 2, &rows, &vocab)) return NULL;
  float *grad = arg_array(&a, 0, "grad", napi_float32_array, rows * vocab);
  const float *logits = arg_array(&a, 1, "logits", napi_float32_array, rows * vocab);
  const int32_t *targets = arg_array(&a, 4, "targets", napi_int32_array, rows);
  const float *lse = arg_array(&a, 5, "lse", napi_float32_array, rows);
  const float *coef = arg_array(&a, 6, "coef", napi_float32_array, rows);
  if (!targets_in_range(&a, targets, rows, vocab)) return NULL;
  if (rows > 0) kv_cross_entropy_grad(grad, logits, (int)rows, (int)vocab, targets, lse, coef);
  return undefined(env);
}

/* siluMulGrad(dGate | null, dUp | null, dy, gate, up, n) */
static napi_value js_silu_mul_grad(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "siluMulGrad", 6)) return NULL;
  int64_t n = arg_int(&a, 5, "n");
  if (!a.failed && n < 0) fail(&a, "n must be >= 0");
  napi_valuetype t0, t1;
  napi_typeof(env, a.argv[0], &t0);
  napi_typeof(env, a.argv[1], &t1);
  float *dg = t0 == napi_null ? NULL : arg_array(&a, 0, "dGate", napi_float32_array, n);
  float *du = t1 == napi_null ? NULL : arg_array(&a, 1, "dUp", napi_float32_array, n);
  const float *dy = arg_array(&a, 2, "dy", napi_float32_array, n);
  const float *g = arg_array(&a, 3, "gate", napi_float32_array, n);
  const float *u = arg_array(&a, 4, "up", napi_float32_array, n);
  if (a.failed) return NULL;
  kv_silu_mul_grad(dg, du, dy, g, u, n);
  return undefined(env);
}

/* The head of a product's arguments: (k, x, accumulate) or, batched, (k, x, nvec, accumulate), x holding nvec
 * vectors of k; then the parts in groups of `per_part` arguments. Returns the number of parts (0 on failure). */
typedef struct {
  int64_t k, nvec;
  const float *x;
  bool acc;
  size_t first;
} ProductHead;
static int product_head(Args *a, int batched, size_t per_part, const char *groups, ProductHead *h) {
  h->first = 3 + (size_t)batched;
  h->k = arg_count(a, 0, "k");
  h->nvec = batched ? arg_count(a, 2, "nvec") : 1;
  if (!a->failed && (h->nvec < 1 || h->nvec > KV_GEMV_MAX_VECS)) fail(a, "nvec must be 1..16");
  h->x = arg_array(a, 1, "x", napi_float32_array, h->k * h->nvec);
  h->acc = arg_bool(a, h->first - 1);
  if (!a->failed && (a->argc - h->first) % per_part != 0) fail(a, groups);
  const int count = (int)((a->argc - h->first) / per_part);
  if (!a->failed && count > KV_GEMV_MAX_PARTS) fail(a, "too many parts");
  return a->failed ? 0 : count;
}

/* The parts of sgemvParts and bf16GemvParts: (k, x, accumulate, w0, n0, y0 [, w1, n1, y1 ...]), up to
 * KV_GEMV_MAX_PARTS matrices against one x; bf16: every w holds bfloat16 bits (a Uint16Array). The batched
 * forms (sgemvPartsBatch, bf16GemvPartsBatch) take (k, x, nvec, accumulate, parts...): x is [nvec, k] and each
 * y [nvec, n]. */
static napi_value gemv_parts(napi_env env, napi_callback_info info, const char *fn, int bf16, int batched) {
  Args a;
  if (!get_args(env, info, &a, fn, 6 + batched)) return NULL;
  ProductHead head;
  const int count = product_head(&a, batched, 3, "parts come in threes: w, n, y", &head);
  const size_t at = head.first;
  const int64_t k = head.k, nvec = head.nvec;
  const float *x = head.x;
  const bool acc = head.acc;
  KvGemvPart parts[KV_GEMV_MAX_PARTS];
  for (int p = 0; p < count && !a.failed; p++) {
    int64_t n = arg_count(&a, at + 3 * p + 1, "n");
    parts[p].n = (int)n;
    parts[p].bf16 = bf16;
    if (bf16) {
      parts[p].w = NULL;
      parts[p].h = arg_array(&a, at + 3 * p, "w", napi_uint16_array, n * k);
    } else {
      arg_weights(&a, at + 3 * p, "w", n * k, &parts[p].w, &parts[p].h);
    }
    parts[p].y = arg_array(&a, at + 3 * p + 2, "y", napi_float32_array, n * nvec);
  }
  if (a.failed) return NULL;
  kv_sgemv_parts_n(count, parts, (int)k, x, (int)nvec, acc);
  return undefined(env);
}

static napi_value js_sgemv_parts(napi_env env, napi_callback_info info) { return gemv_parts(env, info, "sgemvParts", 0, 0); }
static napi_value js_bf16_gemv_parts(napi_env env, napi_callback_info info) { return gemv_parts(env, info, "bf16GemvParts", 1, 0); }
static napi_value js_sgemv_parts_batch(napi_env env, napi_callback_info info) {
  return gemv_parts(env, info, "sgemvPartsBatch", 0, 1);
}
static napi_value js_bf16_gemv_parts_batch(napi_env env, napi_callback_info info) {
  return gemv_parts(env, info, "bf16GemvPartsBatch", 1, 1);
}

/* bf16ToFloat(src: Uint16Array, dst: Float32Array, n) */
static napi_value js_bf16_to_float(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "bf16ToFloat", 3)) return NULL;
  int64_t n = arg_int(&a, 2, "n");
  if (!a.failed && n < 0) fail(&a, "n must be >= 0");
  const uint16_t *src = arg_array(&a, 0, "src", napi_uint16_array, n);
  float *dst = arg_array(&a, 1, "dst", napi_float32_array, n);
  if (a.failed) return NULL;
  kv_bf16_to_float(n, src, dst);
  return undefined(env);
}

/* halfToFloat(src: Uint16Array, dst: Float32Array, n) and floatToHalf(src: Float32Array, dst: Uint16Array, n) */
static napi_value half_convert(napi_env env, napi_callback_info info, bool to_float) {
  Args a;
  if (!get_args(env, info, &a, to_float ? "halfToFloat" : "floatToHalf", 3)) return NULL;
  int64_t n = arg_int(&a, 2, "n");
  if (!a.failed && n < 0) fail(&a, "n must be >= 0");
  const napi_typedarray_type half = napi_uint16_array, single = napi_float32_array;
  void *src = arg_array(&a, 0, "src", to_float ? half : single, n);
  void *dst = arg_array(&a, 1, "dst", to_float ? single : half, n);
  if (a.failed) return NULL;
  if (to_float) kv_half_to_float(n, src, dst);
  else kv_float_to_half(n, src, dst);
  return undefined(env);
}

static napi_value js_half_to_float(napi_env env, napi_callback_info info) { return half_convert(env, info, true); }
static napi_value js_float_to_half(napi_env env, napi_callback_info info) { return half_convert(env, info, false); }


/* 2 MB: the huge-page size on x86-64 and arm64 Linux */
#define HUGE_PAGE ((size_t)2 << 20)

/* `size` bytes (a multiple of the page size) of zeroed memory on a 2 MB-aligned mapping advised for huge pages;
 * NULL where none is left. munmap(p, size) frees it. */
static uint8_t *huge_map(size_t size) {
  uint8_t *raw = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  if (p > raw) munmap(raw, (size_t)(p - raw));
  munmap(p + size, (size_t)(raw + HUGE_PAGE - p));
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

static void free_large(napi_env env, void *data, void *hint) {
  const size_t size = (size_t)(uintptr_t)hint;
  munmap(data, size);
  int64_t left;
  napi_adjust_external_memory(env, -(int64_t)size, &left);
}

/*
 * largeBuffer(bytes): a zeroed ArrayBuffer on its own 2 MB-aligned mapping, advised for transparent huge pages.
 * Weights (and long caches) are streamed from memory at every decode step; on 4 KB pages (under a hypervisor's
 * nested paging too) the page walks cost bandwidth. The mapping ends at the last 4 KB page the buffer needs:
 * its whole 2 MB ranges become huge pages, the tail stays on small ones, so no memory is wasted. Falls back to
 * plain pages where advice is refused.
 */
static napi_value js_large_buffer(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "largeBuffer", 1)) return NULL;
  const int64_t bytes = arg_int(&a, 0, "bytes");
  if (!a.failed && bytes < 0) fail(&a, "bytes must be >= 0");
  if (a.failed) return NULL;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t size = ((size_t)bytes + page - 1) / page * page;
  napi_value out;
  if (size == 0) {
    napi_create_arraybuffer(env, 0, NULL, &out);
    return out;
  }
  uint8_t *p = huge_map(size);
  if (!p) {
    napi_throw_error(env, NULL, "kvevict_native.largeBuffer: out of memory");
    return NULL;
  }
  if (napi_create_external_arraybuffer(env, p, (size_t)bytes, free_large, (void *)(uintptr_t)size, &out) != napi_ok) {
    munmap(p, size);
    return NULL;
  }
  int64_t total;
  napi_adjust_external_memory(env, (int64_t)size, &total);
  return out;
}

static void set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value x;
  napi_create_string_utf8(env, v ? v : "", NAPI_AUTO_LENGTH, &x);
  napi_set_named_property(env, obj, key, x);
}

/* info(): what OpenBLAS picked at load time, and the attention block sizes. */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj;
  napi_create_object(env, &obj);
  set_str(env, obj, "corename", openblas_get_corename());
  set_str(env, obj, "config", openblas_get_config());
  set_num(env, obj, "threads", kv_threads());
  set_num(env, obj, "procs", openblas_get_num_procs());
  set_num(env, obj, "attendRowBlock", KV_ATTEND_ROW_BLOCK);
  set_num(env, obj, "attendKeyChunk", KV_ATTEND_KEY_CHUNK);
  /* whether a bf16 prefill's products run on vdpbf16ps (built for it and timed faster than the FMA here) */
  set_num(env, obj, "bf16Dot", kv_bf16_gemm_fast());
  /* the vector instructions this build targets (the hot loops' own paths) */
#if defined(__AVX512F__)
  set_str(env, obj, "simd", "avx512");
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  set_str(env, obj, "simd", "avx2");
#else
  set_str(env, obj, "simd", "scalar");
#endif
  return obj;
}

/* A thread count argument: an integer >= 1. */
static int64_t arg_threads(Args *a, size_t i) {
  const int64_t t = arg_count(a, i, "threads");
  if (!a->failed && t < 1) fail(a, "threads must be >= 1");
  return t;
}

/* setThreads(n): threads for later calls, OpenBLAS's and the pool's (benchmarks compare 1 and all). */
static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "setThreads", 1)) return NULL;
  const int64_t t = arg_threads(&a, 0);
  if (a.failed) return NULL;
  kv_set_threads((int)t);
  return undefined(env);
}

/* fmaPeak(threads): GFLOP/s of independent float32 FMA chains on that many threads (the machine's ceiling). */
static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "fmaPeak", 1)) return NULL;
  const int64_t t = arg_threads(&a, 0);
  if (a.failed) return NULL;
  /* about 0.2 s per thread on a 100 GFLOP/s core; the best of three runs */
  double best = 0.0;
  for (int r = 0; r < 3; r++) {
    const double g = kv_fma_peak_gflops((int)t, 50L * 1000 * 1000);
    best = g > best ? g : best;
  }
  napi_value out;
  napi_create_double(env, best, &out);
  return out;
}

/* readPeak(threads, megabytes): GB/s of a plain read of a fresh buffer of that size (on huge pages, as the
 * weights are), the best of five passes after a first one. Streams that fetch ahead (the decode products) have
 * run faster than this, so it is a floor of the memory's rate, not its ceiling. */
static napi_value js_read_peak(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "readPeak", 2)) return NULL;
  const int64_t t = arg_threads(&a, 0), mb = arg_int(&a, 1, "megabytes");
  if (!a.failed && (mb < 1 || mb > 65536)) fail(&a, "megabytes must be 1-65536");
  if (a.failed) return NULL;
  const size_t bytes = (size_t)mb << 20;
  float *buf = (float *)huge_map(bytes);
  if (!buf) {
    napi_throw_error(env, NULL, "kvevict_native.readPeak: out of memory");
    return NULL;
  }
  memset(buf, 0, bytes); /* the pages exist before the first timed pass */
  double best = 0.0;
  for (int r = 0; r < 6; r++) {
    const double g = kv_read_peak_gbps((int)t, buf, (int64_t)(bytes / sizeof(float)));
    if (r > 0) best = g > best ? g : best;
  }
  munmap(buf, bytes);
  napi_value out;
  napi_create_double(env, best, &out);
  return out;
}

/* A block-quantized type index (native/kernels.h's KV_Q* order). */
static int arg_quant_type(Args *a, size_t i) {
  const int64_t t = arg_int(a, i, "type");
  if (!a->failed && (t < 0 || t >= KV_QUANT_TYPES)) fail(a, "type is not a quantized type index");
  return (int)t;
}

/* The bytes of `rows` rows of `k` weights of `type`, failing unless k is whole blocks. */
static int64_t quant_bytes(Args *a, int type, int64_t rows, int64_t k) {
  if (a->failed) return 0;
  const int bs = kv_quant_block_size(type);
  if (k % bs != 0) {
    fail(a, "k is not a multiple of the block size");
    return 0;
  }
  return rows * (k / bs) * kv_quant_block_bytes(type);
}

/* quantGemvParts(k, x, accumulate, type0, data0, n0, y0 [, type1, data1, n1, y1 ...]): parts[p].y (+)= W_p . x;
 * quantGemvPartsBatch(k, x, nvec, accumulate, parts...): x [nvec, k], each y [nvec, n]. */
static napi_value quant_gemv_parts(napi_env env, napi_callback_info info, const char *fn, int batched) {
  Args a;
  if (!get_args(env, info, &a, fn, 7 + batched)) return NULL;
  ProductHead head;
  const int count = product_head(&a, batched, 4, "parts come in fours: type, data, n, y", &head);
  const size_t first = head.first;
  const int64_t k = head.k, nvec = head.nvec;
  const float *x = head.x;
  const bool acc = head.acc;
  if (!a.failed && k % 32 != 0) fail(&a, "k must be a multiple of 32");
  KvQuantPart parts[KV_GEMV_MAX_PARTS];
  for (int p = 0; p < count && !a.failed; p++) {
    const size_t at = first + 4 * (size_t)p;
    parts[p].type = arg_quant_type(&a, at);
    const int64_t n = arg_count(&a, at + 2, "n");
    parts[p].n = (int)n;
    parts[p].data = arg_array(&a, at + 1, "data", napi_uint8_array, quant_bytes(&a, parts[p].type, n, k));
    parts[p].y = arg_array(&a, at + 3, "y", napi_float32_array, n * nvec);
  }
  if (a.failed) return NULL;
  if (k == 0) {
    for (int p = 0; p < count && !acc; p++) memset(parts[p].y, 0, sizeof(float) * (size_t)(parts[p].n * nvec));
    return undefined(env);
  }
  if (kv_quant_gemv_parts_n(count, parts, (int)k, x, (int)nvec, acc) != 0) {
    fail(&a, "out of memory for the quantized activations");
    return NULL;
  }
  return undefined(env);
}

static napi_value js_quant_gemv_parts(napi_env env, napi_callback_info info) { return quant_gemv_parts(env, info, "quantGemvParts", 0); }
static napi_value js_quant_gemv_parts_batch(napi_env env, napi_callback_info info) {
  return quant_gemv_parts(env, info, "quantGemvPartsBatch", 1);
}

/* quantGemm(type, data, n, k, x, m, y, ldy, accumulate): y[m, ldy] (+)= x[m, k] . W[n, k]^T in integer products;
 * false where the build has none (the caller widens instead) */
static napi_value js_quant_gemm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "quantGemm", 9)) return NULL;
  const int type = arg_quant_type(&a, 0);
  const int64_t n = arg_count(&a, 2, "n"), k = arg_count(&a, 3, "k"), m = arg_count(&a, 5, "m"), ldy = arg_count(&a, 7, "ldy");
  if (!a.failed && k % 32 != 0) fail(&a, "k must be a multiple of 32");
  if (!a.failed && ldy < n) fail(&a, "ldy must be at least n");
  const uint8_t *w = arg_array(&a, 1, "data", napi_uint8_array, quant_bytes(&a, type, n, k));
  const float *x = arg_array(&a, 4, "x", napi_float32_array, m * k);
  float *y = arg_array(&a, 6, "y", napi_float32_array, m > 0 ? (m - 1) * ldy + n : 0);
  const bool acc = arg_bool(&a, 8);
  if (a.failed) return NULL;
  napi_value out;
  if (!kv_quant_gemm_available() || k == 0) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  const int rc = kv_quant_gemm(type, w, (int)n, (int)k, x, (int)m, y, (int)ldy, acc);
  if (rc == -2) {
    fail(&a, "out of memory for the quantized activations");
    return NULL;
  }
  napi_get_boolean(env, rc == 0, &out);
  return out;
}

/* bf16Gemm(k, x, m, accumulate, bits0, n0, y0, ldy0 [, bits1, n1, y1, ldy1 ...]): y_p[m, ldy_p] (+)= x[m, k] .
 * W_p[n_p, k]^T on vdpbf16ps (x rounded to bf16), up to KV_GEMM_MAX_PARTS matrices; false, every y untouched,
 * where that is not the faster product here (the caller widens W) */
static napi_value js_bf16_gemm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "bf16Gemm", 8)) return NULL;
  const int64_t k = arg_count(&a, 0, "k"), m = arg_count(&a, 2, "m");
  const float *x = arg_array(&a, 1, "x", napi_float32_array, m * k);
  const bool acc = arg_bool(&a, 3);
  if (!a.failed && (a.argc - 4) % 4 != 0) fail(&a, "parts come in fours: bits, n, y, ldy");
  const int count = a.failed ? 0 : (int)((a.argc - 4) / 4);
  if (!a.failed && count > KV_GEMM_MAX_PARTS) fail(&a, "too many parts");
  KvBf16Part parts[KV_GEMM_MAX_PARTS];
  for (int p = 0; p < count && !a.failed; p++) {
    const size_t at = 4 + 4 * (size_t)p;
    const int64_t n = arg_count(&a, at + 1, "n"), ldy = arg_count(&a, at + 3, "ldy");
    if (!a.failed && ldy < n) fail(&a, "ldy must be at least n");
    parts[p].w = arg_array(&a, at, "bits", napi_uint16_array, n * k);
    parts[p].y = arg_array(&a, at + 2, "y", napi_float32_array, m > 0 ? (m - 1) * ldy + n : 0);
    parts[p].n = (int)n, parts[p].ldy = (int)ldy;
  }
  if (a.failed) return NULL;
  napi_value out;
  if (!kv_bf16_gemm_fast() || k == 0 || k % 2 != 0) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  const int rc = kv_bf16_gemm(count, parts, (int)k, x, (int)m, acc);
  if (rc == -2) {
    fail(&a, "out of memory for the bf16 activations");
    return NULL;
  }
  napi_get_boolean(env, rc == 0, &out);
  return out;
}

/* dequantBlocks(type, src: Uint8Array, blocks, dst: Float32Array): `blocks` blocks to float32 */
static napi_value js_dequant_blocks(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, &a, "dequantBlocks", 4)) return NULL;
  const int type = arg_quant_type(&a, 0);
  const int64_t blocks = arg_int(&a, 2, "blocks");
  if (!a.failed && blocks < 0) fail(&a, "blocks must be >= 0");
  const uint8_t *src = arg_array(&a, 1, "src", napi_uint8_array, a.failed ? 0 : blocks * kv_quant_block_bytes(type));
  float *dst = arg_array(&a, 3, "dst", napi_float32_array, a.failed ? 0 : blocks * kv_quant_block_size(type));
  if (a.failed) return NULL;
  kv_dequant_blocks(type, src, blocks, dst);
  return undefined(env);
}

NAPI_MODULE_INIT() {
  kv_threads(); /* records OpenBLAS's thread count before any pooled job lowers it */
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"sgemm", js_sgemm},     {"sgemv", js_sgemv},           {"rmsnorm", js_rmsnorm}, {"rmsnormGrad", js_rmsnorm_grad},
      {"rope", js_rope},       {"siluMul", js_silu_mul}, {"add", js_add},      {"attendHead", js_attend_head},
      {"info", js_info},       {"setThreads", js_set_threads},
      {"causalSoftmax", js_causal_softmax}, {"causalSoftmaxGrad", js_causal_softmax_grad},
      {"siluMulGrad", js_silu_mul_grad}, {"crossEntropy", js_cross_entropy}, {"crossEntropyGrad", js_cross_entropy_grad}, {"softmaxRowsAccumulate", js_softmax_rows_accumulate},
      {"softmaxRowsMax", js_softmax_rows_max},
      {"sgemvParts", js_sgemv_parts}, {"halfToFloat", js_half_to_float}, {"floatToHalf", js_float_to_half},
      {"largeBuffer", js_large_buffer}, {"fmaPeak", js_fma_peak}, {"readPeak", js_read_peak}, {"copyRows", js_copy_rows},
      {"packWeights", js_pack_weights}, {"sgemmPacked", js_sgemm_packed}, {"sgemmPackedParts", js_sgemm_packed_parts},
      {"quantGemvParts", js_quant_gemv_parts}, {"dequantBlocks", js_dequant_blocks}, {"quantGemm", js_quant_gemm},
      {"bf16Gemm", js_bf16_gemm},
      {"bf16GemvParts", js_bf16_gemv_parts},
      {"sgemvPartsBatch", js_sgemv_parts_batch}, {"bf16GemvPartsBatch", js_bf16_gemv_parts_batch},
      {"quantGemvPartsBatch", js_quant_gemv_parts_batch}, {"bf16ToFloat", js_bf16_to_float},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}
