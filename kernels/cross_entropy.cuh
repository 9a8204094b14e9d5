// Device code of the fused softmax + cross-entropy with per-token loss weights (launched by
// kernels/cross_entropy.cu): one block per row, three passes over the row (max, sum of
// exponentials, gradient). Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::cross_entropy_kernels {

using detail::block_max;
using detail::block_sum;
using detail::from_f32;
using detail::to_f32;

// Block i: row i of logits (n, v). Every branch below is uniform across the block.
template <class S>
__global__ void cross_entropy_kernel(float* losses, S* dlogits, const S* logits,
                                     const int32_t* targets, const float* weights, int64_t v,
                                     double grad_scale) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const S* z = logits + i * v;
  S* dz = dlogits + i * v;
  const float weight = weights[i];
  if (weight == 0.0f) {  // ignored position: its target need not even be valid
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) dz[j] = from_f32<S>(0.0f);
    if (threadIdx.x == 0) losses[i] = 0.0f;
    return;
  }
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, to_f32(z[j]));
  m = block_max(m, red);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) sum += expf(to_f32(z[j]) - m);
  sum = block_sum(sum, red);
  const float lse = m + logf(sum);
  const int32_t y = targets[i];
  const bool valid = y >= 0 && y < v;
  const float zy = valid ? to_f32(z[y]) : __uint_as_float(0x7fc00000u);
  __syncthreads();  // every thread has read z[y] before any thread overwrites the row
  if (threadIdx.x == 0) losses[i] = lse - zy;
  const float w = static_cast<float>(static_cast<double>(weight) * grad_scale);
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    float d = expf(to_f32(z[j]) - lse) * w;
    if (j == y) d -= w;
    if (!valid) d = __uint_as_float(0x7fc00000u);
    dz[j] = from_f32<S>(d);
  }
}

// ---- launch geometry (host), shared by the launcher and the emulated test ------------------
// Threads per row block: the row's width rounded up to whole warps, 32 to 1024.
inline int row_threads(int64_t v) {
  int threads = static_cast<int>(v >= 1024 ? 1024 : (v + 31) / 32 * 32);
  if (threads < 32) threads = 32;
  return threads;
}

}  // namespace meap::cuda::cross_entropy_kernels
