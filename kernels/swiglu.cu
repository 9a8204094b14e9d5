// SwiGLU: one thread per (row, hidden unit), fp32 math with the CPU reference's formulas.
#include "backend/cuda/cuda_check.hpp"
#include "cuda_common.cuh"
#include "swiglu.hpp"

namespace meap::cuda {

namespace {

using detail::from_f32;
using detail::kThreads;
using detail::to_f32;

// Element e = (i, j) of out (n, f): gate at gate_up[i, j], up at gate_up[i, f + j].
template <class S>
__global__ void swiglu_forward_kernel(S* out, const S* gate_up, int64_t n, int64_t f) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n * f;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / f, j = e % f;
    const float g = to_f32(gate_up[i * 2 * f + j]);
    const float u = to_f32(gate_up[i * 2 * f + f + j]);
    const float sig = 1.0f / (1.0f + expf(-g));
    out[e] = from_f32<S>(g * sig * u);
  }
}

// d silu(g) / dg = sig(g) * (1 + g * (1 - sig(g))).
template <class S>
__global__ void swiglu_backward_kernel(S* dgate_up, const S* dout, const S* gate_up, int64_t n,
                                       int64_t f) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n * f;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / f, j = e % f;
    const float g = to_f32(gate_up[i * 2 * f + j]);
    const float u = to_f32(gate_up[i * 2 * f + f + j]);
    const float sig = 1.0f / (1.0f + expf(-g));
    const float go = to_f32(dout[e]);
    dgate_up[i * 2 * f + f + j] = from_f32<S>(go * g * sig);
    dgate_up[i * 2 * f + j] = from_f32<S>(go * u * sig * (1.0f + g * (1.0f - sig)));
  }
}

}  // namespace

template <class S>
void swiglu_forward(S* out, const S* gate_up, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_forward_kernel<S><<<detail::grid_for(n * f), kThreads, 0, stream>>>(out, gate_up, n, f);
  MEAP_CUDA_CHECK_LAUNCH();
}

template <class S>
void swiglu_backward(S* dgate_up, const S* dout, const S* gate_up, int64_t n, int64_t f,
                     cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_backward_kernel<S><<<detail::grid_for(n * f), kThreads, 0, stream>>>(dgate_up, dout,
                                                                             gate_up, n, f);
  MEAP_CUDA_CHECK_LAUNCH();
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template void swiglu_forward<uint16_t>(uint16_t*, const uint16_t*, int64_t, int64_t,
                                       cudaStream_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t,
                                     cudaStream_t);
template void swiglu_backward<uint16_t>(uint16_t*, const uint16_t*, const uint16_t*, int64_t,
                                        int64_t, cudaStream_t);

}  // namespace meap::cuda
