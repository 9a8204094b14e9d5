// Device code of the f32 <-> bf16 conversions (launched by kernels/cast.cu), one thread per
// element. Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::cast_kernels {

__global__ void f32_to_bf16_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = detail::f32_to_bf16_bits(src[i]);
}

__global__ void bf16_to_f32_kernel(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = detail::bf16_bits_to_f32(src[i]);
}

}  // namespace meap::cuda::cast_kernels
