// Launchers of the f32 <-> bf16 conversions (kernels in kernels/cast.cuh).
#include "cast.cuh"
#include "cast.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace cast_kernels;

void cast_f32_to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(f32_to_bf16_kernel, detail::grid_for(n), detail::kThreads, 0, stream, dst, src, n);
}

void cast_bf16_to_f32(float* dst, const uint16_t* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(bf16_to_f32_kernel, detail::grid_for(n), detail::kThreads, 0, stream, dst, src, n);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
