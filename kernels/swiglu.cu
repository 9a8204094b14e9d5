// Launchers of SwiGLU forward and backward (kernels in kernels/swiglu.cuh).
#include "swiglu.cuh"
#include "swiglu.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace swiglu_kernels;
using detail::kThreads;

template <class S>
void swiglu_forward(S* out, const S* gate_up, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  launch(swiglu_forward_kernel<S>, detail::grid_for(n * f), kThreads, 0, stream, out, gate_up, n,
         f);
}

template <class S>
void swiglu_backward(S* dgate_up, const S* dout, const S* gate_up, int64_t n, int64_t f,
                     cudaStream_t stream) {
  if (n * f == 0) return;
  launch(swiglu_backward_kernel<S>, detail::grid_for(n * f), kThreads, 0, stream, dgate_up, dout,
         gate_up, n, f);
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template void swiglu_forward<uint16_t>(uint16_t*, const uint16_t*, int64_t, int64_t, cudaStream_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t,
                                     cudaStream_t);
template void swiglu_backward<uint16_t>(uint16_t*, const uint16_t*, const uint16_t*, int64_t,
                                        int64_t, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
