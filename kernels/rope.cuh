// Device code of the rotary position embedding (launched by kernels/rope.cu), in place: one
// thread per rotated pair. Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::rope_kernels {

using detail::from_f32;
using detail::to_f32;

// Element e enumerates (bi, ti, h, j) with h < h_rot and j < half, j fastest. Token (bi, ti)
// reads table row positions[bi * t + ti] (packed documents restart at 0), or ti when
// positions is null.
template <class S>
__global__ void rope_kernel(S* x, const float* cos, const float* sin, const int32_t* positions,
                            int64_t b, int64_t t, int64_t h_total, int64_t h_rot, int64_t d,
                            float sign) {
  const int64_t half = d / 2;
  const int64_t total = b * t * h_rot * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % half;
    const int64_t h = (e / half) % h_rot;
    const int64_t bt = e / (half * h_rot);  // bi * t + ti
    const int64_t pos = positions ? static_cast<int64_t>(positions[bt]) : bt % t;
    S* v = x + (bt * h_total + h) * d;
    const float c = cos[pos * half + j];
    const float s = sign * sin[pos * half + j];
    const float x1 = to_f32(v[j]), x2 = to_f32(v[j + half]);
    v[j] = from_f32<S>(x1 * c - x2 * s);
    v[j + half] = from_f32<S>(x2 * c + x1 * s);
  }
}

}  // namespace meap::cuda::rope_kernels
