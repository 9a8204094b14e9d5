// Device code of the optimizer (launched by kernels/optimizer.cu): the deterministic sum of
// squares, scale, AdamW (fp32 master, optional bf16 working copy). Also compiled on the host
// by tests/cuda_emulator.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::optimizer_kernels {

using detail::block_sum;
using detail::from_f32;
using detail::to_f32;

constexpr int kMaxPartials = 1024;          // blocks of the first sum_squares pass
constexpr int64_t kElementsPerBlock = 8192;  // before the grid reaches kMaxPartials

// Pass 1: block b grid-strides over x, squares summed in double, block-reduced into
// partial[b].
template <class S>
__global__ void sum_squares_partial_kernel(double* partial, const S* x, int64_t n) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = to_f32(x[i]);
    acc += v * v;
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2: one block sums the partials (thread t takes t, t + blockDim, ...; then the block
// reduction), a fixed order.
__global__ void sum_squares_final_kernel(double* result, const double* partial, int count) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int k = threadIdx.x; k < count; k += blockDim.x) acc += partial[k];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) *result = acc;
}

template <class S>
__global__ void scale_kernel(S* x, int64_t n, float factor) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f32<S>(to_f32(x[i]) * factor);
}

struct AdamWConstants {
  float lr, b1, b2, eps, wd, c1, c2;
};

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v,
                             uint16_t* working_copy, int64_t n, AdamWConstants k) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i];
    const float mi = k.b1 * m[i] + (1.0f - k.b1) * g;
    const float vi = k.b2 * v[i] + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float update = (mi * k.c1) / (sqrtf(vi * k.c2) + k.eps);
    const float p = param[i] - k.lr * (update + k.wd * param[i]);
    param[i] = p;
    if (working_copy) working_copy[i] = detail::f32_to_bf16_bits(p);
  }
}

// ---- launch geometry and constants (host), shared by the launcher and the emulated test ---
// Blocks of the first sum_squares pass: a pure function of n.
inline int partial_blocks(int64_t n) {
  int64_t blocks = (n + kElementsPerBlock - 1) / kElementsPerBlock;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxPartials) blocks = kMaxPartials;
  return static_cast<int>(blocks);
}

// The constants are rounded to float exactly as the CPU reference does.
inline AdamWConstants adamw_constants(double lr, double beta1, double beta2, double eps,
                                      double weight_decay, int64_t step) {
  AdamWConstants k;
  k.lr = static_cast<float>(lr);
  k.b1 = static_cast<float>(beta1);
  k.b2 = static_cast<float>(beta2);
  k.eps = static_cast<float>(eps);
  k.wd = static_cast<float>(weight_decay);
  k.c1 = static_cast<float>(1.0 / (1.0 - std::pow(beta1, static_cast<double>(step))));
  k.c2 = static_cast<float>(1.0 / (1.0 - std::pow(beta2, static_cast<double>(step))));
  return k;
}

}  // namespace meap::cuda::optimizer_kernels
