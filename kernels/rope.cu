// Launcher of the rotary position embedding (kernel in kernels/rope.cuh).
#include "rope.cuh"
#include "rope.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace rope_kernels;
using detail::kThreads;

template <class S>
void rope_apply(S* x, const float* cos, const float* sin, const int32_t* positions, int64_t b,
                int64_t t, int64_t h_total, int64_t h_rot, int64_t d, bool inverse,
                cudaStream_t stream) {
  const int64_t total = b * t * h_rot * (d / 2);
  if (total == 0) return;
  launch(rope_kernel<S>, detail::grid_for(total), kThreads, 0, stream, x, cos, sin, positions, b, t,
         h_total, h_rot, d, inverse ? -1.0f : 1.0f);
}

template void rope_apply<float>(float*, const float*, const float*, const int32_t*, int64_t,
                                int64_t, int64_t, int64_t, int64_t, bool, cudaStream_t);
template void rope_apply<uint16_t>(uint16_t*, const float*, const float*, const int32_t*, int64_t,
                                   int64_t, int64_t, int64_t, int64_t, bool, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
