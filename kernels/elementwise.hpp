// Host-side launchers of the elementwise CUDA kernels (kernels/elementwise.cu).
// Pointers are device pointers; launches are asynchronous on `stream`.
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// out (n) = a + b in fp32; out may alias a. Also on bf16 storage (uint16_t bit patterns).
void add(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
void add(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
