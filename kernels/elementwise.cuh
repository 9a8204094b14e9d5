// Device code of the elementwise kernels (launched by kernels/elementwise.cu): the residual
// add, fp32 and bf16. Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

#ifndef MEAP_CUDA_EMULATION
#include <cuda_bf16.h>
#endif

namespace meap::cuda::elementwise_kernels {

constexpr int kThreads = 256;

__global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void add_bf16_kernel(__nv_bfloat16* out, const __nv_bfloat16* a,
                                const __nv_bfloat16* b, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

// ---- launch geometry (host), shared by the launcher and the emulated test ------------------
// Blocks for the grid-stride loops over n elements: at least 1, at most 65535 * 16.
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

}  // namespace meap::cuda::elementwise_kernels
