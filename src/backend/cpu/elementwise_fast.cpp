// The fast f32 elementwise kernels: SwiGLU, RMSNorm, embedding scatter, fused softmax +
// cross-entropy and AdamW as vectorised loops (per-ISA clones, a vectorisable exp),
// parallel over rows. Same contracts as the reference kernels; reductions over a row run
// in one thread, and cross-row reductions (RMSNorm's dweight) over fixed row chunks added
// in chunk order, so the results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "fast_kernels.hpp"
#include "fast_math.hpp"

namespace meap::cpu::fast {

namespace {

MEAP_SIMD_CLONES
void swiglu_rows(float* out, const float* gate_up, int64_t rows, int64_t f) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* g = gate_up + i * 2 * f;
    const float* u = g + f;
    float* o = out + i * f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) o[j] = g[j] * u[j] / (1.0f + exp_approx(-g[j]));
  }
}

// d silu(g) / dg = sig(g) * (1 + g * (1 - sig(g))).
MEAP_SIMD_CLONES
void swiglu_backward_rows(float* dgate_up, const float* dout, const float* gate_up,
                          int64_t rows, int64_t f) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* g = gate_up + i * 2 * f;
    const float* u = g + f;
    const float* go = dout + i * f;
    float* dg = dgate_up + i * 2 * f;
    float* du = dg + f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) {
      const float sig = 1.0f / (1.0f + exp_approx(-g[j]));
      du[j] = go[j] * g[j] * sig;
      dg[j] = go[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
    }
  }
}

MEAP_SIMD_CLONES
void rmsnorm_rows(float* out, float* rstd, const float* x, const float* weight, int64_t rows,
                  int64_t c, float eps) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * c;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < c; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(c) + eps);
    rstd[i] = r;
    float* o = out + i * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) o[j] = xi[j] * r * weight[j];
  }
}

// dx (rows, C) += rstd * (g - xhat * mean(g * xhat)) with g = dout * w, xhat = x * rstd;
// dw_part (C) = sum over these rows of dout * xhat (overwritten).
MEAP_SIMD_CLONES
void rmsnorm_backward_rows(float* dx, float* dw_part, const float* dout, const float* x,
                           const float* weight, const float* rstd, int64_t rows, int64_t c) {
  std::fill(dw_part, dw_part + c, 0.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * c;
    const float* gi = dout + i * c;
    const float r = rstd[i];
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < c; ++j) dot += gi[j] * weight[j] * xi[j];
    const float k = r * r * dot / static_cast<float>(c);
    float* dxi = dx + i * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) {
      dxi[j] += r * (gi[j] * weight[j] - xi[j] * k);
      dw_part[j] += gi[j] * xi[j] * r;
    }
  }
}

MEAP_SIMD_CLONES
void add_rows(float* acc, const float* part, int64_t c) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) acc[j] += part[j];
}

// One row of the fused softmax + cross-entropy; dz may alias z.
MEAP_SIMD_CLONES
float cross_entropy_row(float* dz, const float* z, int32_t y, float w, int64_t v) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < v; ++j) m = std::max(m, z[j]);
  const float zy = z[y];  // read before dz may overwrite z
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < v; ++j) {
    const float e = exp_approx(z[j] - m);
    dz[j] = e;
    sum += e;
  }
  const float lse = m + std::log(sum);
  const float k = w / sum;
#pragma omp simd
  for (int64_t j = 0; j < v; ++j) dz[j] *= k;
  dz[y] -= w;
  return lse - zy;
}

MEAP_SIMD_CLONES
void adamw_range(float* param, const float* grad, float* m, float* v, int64_t n, float b1,
                 float b2, float lr, float wd, float eps, float c1, float c2) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= lr * ((mi * c1) / (std::sqrt(vi * c2) + eps) + wd * param[i]);
  }
}

// Rows per parallel task: enough work to amortise the scheduling.
constexpr int64_t kRowChunk = 32;

}  // namespace

void swiglu_forward(float* out, const float* gate_up, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < n; i0 += kRowChunk)
    swiglu_rows(out + i0 * f, gate_up + i0 * 2 * f, std::min(kRowChunk, n - i0), f);
}

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t n,
                     int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < n; i0 += kRowChunk)
    swiglu_backward_rows(dgate_up + i0 * 2 * f, dout + i0 * f, gate_up + i0 * 2 * f,
                         std::min(kRowChunk, n - i0), f);
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t n,
                     int64_t c, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < n; i0 += kRowChunk)
    rmsnorm_rows(out + i0 * c, rstd + i0, x + i0 * c, weight, std::min(kRowChunk, n - i0), c,
                 static_cast<float>(eps));
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                      const float* weight, const float* rstd, int64_t n, int64_t c) {
  // One dweight partial per chunk of kRowChunk rows, added up in chunk order afterwards.
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  thread_local std::vector<float> partial;  // (chunks, C), grown on the first step
  if (static_cast<int64_t>(partial.size()) < chunks * c) partial.resize(chunks * c);
  float* part = partial.data();
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t i0 = k * kRowChunk;
    rmsnorm_backward_rows(dx + i0 * c, part + k * c, dout + i0 * c, x + i0 * c, weight,
                          rstd + i0, std::min(kRowChunk, n - i0), c);
  }
  for (int64_t k = 0; k < chunks; ++k) add_rows(dweight, part + k * c, c);
}

// Parallel over column ranges: each thread owns a slice of every table row and visits the
// tokens in order (the reference's summation order, so the same bits).
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t n,
                        int64_t c) {
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t per = (c / threads + 15) / 16 * 16;
    const int64_t j0 = std::min(c, tid * per);
    const int64_t j1 = tid == threads - 1 ? c : std::min(c, j0 + per);
    if (j1 > j0)
      for (int64_t i = 0; i < n; ++i) {
        float* dst = dtable + static_cast<int64_t>(tokens[i]) * c;
        const float* src = dout + i * c;
        for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
      }
  }
}

void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* dz = dlogits + i * v;
    if (weights[i] == 0.0f) {  // ignored position: its target need not even be valid
      losses[i] = 0.0f;
      std::fill(dz, dz + v, 0.0f);
      continue;
    }
    losses[i] = cross_entropy_row(dz, logits + i * v, targets[i],
                                  static_cast<float>(weights[i] * grad_scale), v);
  }
}

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(beta1, static_cast<double>(step))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(beta2, static_cast<double>(step))));
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < n; i0 += kChunk)
    adamw_range(param + i0, grad + i0, m + i0, v + i0, std::min(kChunk, n - i0),
                static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(lr),
                static_cast<float>(weight_decay), static_cast<float>(eps), c1, c2);
}

}  // namespace meap::cpu::fast
