// Launchers of the f32 <-> bf16 conversions (kernels in kernels/cast.cuh).
#include "backend/cuda/cuda_check.hpp"
#include "cast.cuh"
#include "cast.hpp"

namespace meap::cuda {

using namespace cast_kernels;

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
