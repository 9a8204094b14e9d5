// Device code of RMSNorm (launched by kernels/rmsnorm.cu): one block per row for the row
// statistics, column threads over fixed row chunks for the weight gradient (no atomics:
// bit-identical run to run). Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::rmsnorm_kernels {

using detail::block_sum;
using detail::from_f32;
using detail::to_f32;

// Block i: row i of x (n, c). rstd[i] = 1/sqrt(sum(x^2)/c + eps); out = (x * rstd) * w.
template <class S>
__global__ void rmsnorm_forward_kernel(S* out, float* rstd, const S* x, const S* weight,
                                       int64_t c, float eps) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const S* xi = x + i * c;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const float v = to_f32(xi[j]);
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(c) + eps);
  if (threadIdx.x == 0) rstd[i] = r;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    out[i * c + j] = from_f32<S>(to_f32(xi[j]) * r * to_f32(weight[j]));
}

// Block i: row i. mean_dot = sum_j(dout * w * x * r) / c; dx += r * (dout * w - x * r * mean_dot).
template <class S>
__global__ void rmsnorm_backward_dx_kernel(S* dx, const S* dout, const S* x, const S* weight,
                                           const float* rstd, int64_t c) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const S* xi = x + i * c;
  const S* gi = dout + i * c;
  const float r = rstd[i];
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    dot += to_f32(gi[j]) * to_f32(weight[j]) * to_f32(xi[j]) * r;
  dot = block_sum(dot, red);
  const float mean_dot = dot / static_cast<float>(c);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const float xv = to_f32(xi[j]);
    const float d = r * (to_f32(gi[j]) * to_f32(weight[j]) - xv * r * mean_dot);
    dx[i * c + j] = from_f32<S>(to_f32(dx[i * c + j]) + d);
  }
}

// grid (ceil(c / threads), chunks): thread column j of chunk k sums dout * x * rstd over the
// chunk's rows in order into partial[k * c + j].
template <class S>
__global__ void rmsnorm_dweight_partial_kernel(float* partial, const S* dout, const S* x,
                                               const float* rstd, int64_t n, int64_t c,
                                               int64_t chunk_rows) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t k = blockIdx.y;
  if (j >= c) return;
  const int64_t begin = k * chunk_rows;
  const int64_t end = begin + chunk_rows < n ? begin + chunk_rows : n;
  float acc = 0.f;
  for (int64_t i = begin; i < end; ++i)
    acc += to_f32(dout[i * c + j]) * to_f32(x[i * c + j]) * rstd[i];
  partial[k * c + j] = acc;
}

// dweight[j] += sum over chunks k (ascending) of partial[k * c + j].
__global__ void rmsnorm_dweight_final_kernel(float* dweight, const float* partial,
                                             int64_t chunks, int64_t c) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= c) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * c + j];
  dweight[j] += acc;
}

// ---- launch geometry (host), shared by the launcher and the emulated test ------------------
// Rows per chunk of the dweight reduction: a pure function of n (determinism), with at most
// 65535 chunks (grid.y).
inline int64_t rows_per_chunk(int64_t n) {
  int64_t r = 64;
  while ((n + r - 1) / r > 65535) r *= 2;
  return r;
}

// Threads per row block: a multiple of 32, no more than the row needs, at most 1024.
inline int row_threads(int64_t c) {
  int64_t t = (c + 31) / 32 * 32;
  if (t > 1024) t = 1024;
  if (t < 32) t = 32;
  return static_cast<int>(t);
}

}  // namespace meap::cuda::rmsnorm_kernels
