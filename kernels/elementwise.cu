// Launchers of the elementwise kernels (kernels/elementwise.cuh): the residual add, fp32 and
// bf16.
#include "cuda_common.cuh"
#include "elementwise.cuh"
#include "elementwise.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace elementwise_kernels;

void add(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  launch(add_f32_kernel, grid_for(n), kThreads, 0, stream, out, a, b, n);
}

void add(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n, cudaStream_t stream) {
  launch(add_bf16_kernel, grid_for(n), kThreads, 0, stream, reinterpret_cast<__nv_bfloat16*>(out),
         reinterpret_cast<const __nv_bfloat16*>(a), reinterpret_cast<const __nv_bfloat16*>(b), n);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
