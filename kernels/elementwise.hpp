// Host-side launchers of the elementwise CUDA kernels (kernels/elementwise.cu).
// Pointers are device pointers; launches are asynchronous on `stream`.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace meap::cuda {

// out (n) = a + b in fp32; out may alias a.
void add_f32(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
// The same on bf16 storage (uint16_t bit patterns), computed in fp32.
void add_bf16(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n,
              cudaStream_t stream);

}  // namespace meap::cuda
