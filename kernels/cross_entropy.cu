// Launcher of the fused softmax + cross-entropy (kernel in kernels/cross_entropy.cuh).
#include "cross_entropy.cuh"
#include "cross_entropy.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace cross_entropy_kernels;

template <class S>
void cross_entropy_forward_backward(float* losses, S* dlogits, const S* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale, cudaStream_t stream) {
  if (n == 0) return;
  MEAP_CHECK(n < (int64_t{1} << 31), "cross-entropy: too many rows");
  launch(cross_entropy_kernel<S>, static_cast<unsigned>(n), row_threads(v), 0, stream, losses,
         dlogits, logits, targets, weights, v, grad_scale);
}

template void cross_entropy_forward_backward<float>(float*, float*, const float*, const int32_t*,
                                                    const float*, int64_t, int64_t, double,
                                                    cudaStream_t);
template void cross_entropy_forward_backward<uint16_t>(float*, uint16_t*, const uint16_t*,
                                                       const int32_t*, const float*, int64_t,
                                                       int64_t, double, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
