// Device code of SwiGLU (launched by kernels/swiglu.cu): one thread per (row, hidden unit),
// fp32 math with the CPU reference's formulas. Also compiled on the host by
// tests/cuda_emulator.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::swiglu_kernels {

using detail::from_f32;
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

}  // namespace meap::cuda::swiglu_kernels
