// f32 <-> bf16 conversions, one thread per element.
#include "backend/cuda/cuda_check.hpp"
#include "cast.hpp"
#include "cuda_common.cuh"

namespace meap::cuda {

namespace {

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

}  // namespace

void cast_f32_to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<detail::grid_for(n), detail::kThreads, 0, stream>>>(dst, src, n);
  MEAP_CUDA_CHECK_LAUNCH();
}

void cast_bf16_to_f32(float* dst, const uint16_t* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<detail::grid_for(n), detail::kThreads, 0, stream>>>(dst, src, n);
  MEAP_CUDA_CHECK_LAUNCH();
}

}  // namespace meap::cuda
