// Rotary position embedding, in place: one thread per rotated pair.
#include "backend/cuda/cuda_check.hpp"
#include "cuda_common.cuh"
#include "rope.hpp"

namespace meap::cuda {

namespace {

using detail::from_f32;
using detail::kThreads;
using detail::to_f32;

// Element e enumerates (bi, ti, h, j) with h < h_rot and j < half, j fastest.
template <class S>
__global__ void rope_kernel(S* x, const float* cos, const float* sin, int64_t b, int64_t t,
                            int64_t h_total, int64_t h_rot, int64_t d, float sign) {
  const int64_t half = d / 2;
  const int64_t total = b * t * h_rot * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % half;
    const int64_t h = (e / half) % h_rot;
    const int64_t bt = e / (half * h_rot);  // bi * t + ti
    const int64_t ti = bt % t;
    S* v = x + (bt * h_total + h) * d;
    const float c = cos[ti * half + j];
    const float s = sign * sin[ti * half + j];
    const float x1 = to_f32(v[j]), x2 = to_f32(v[j + half]);
    v[j] = from_f32<S>(x1 * c - x2 * s);
    v[j + half] = from_f32<S>(x2 * c + x1 * s);
  }
}

}  // namespace

template <class S>
void rope_apply(S* x, const float* cos, const float* sin, int64_t b, int64_t t,
                int64_t h_total, int64_t h_rot, int64_t d, bool inverse, cudaStream_t stream) {
  const int64_t total = b * t * h_rot * (d / 2);
  if (total == 0) return;
  rope_kernel<S><<<detail::grid_for(total), kThreads, 0, stream>>>(
      x, cos, sin, b, t, h_total, h_rot, d, inverse ? -1.0f : 1.0f);
  MEAP_CUDA_CHECK_LAUNCH();
}

template void rope_apply<float>(float*, const float*, const float*, int64_t, int64_t, int64_t,
                                int64_t, int64_t, bool, cudaStream_t);
template void rope_apply<uint16_t>(uint16_t*, const float*, const float*, int64_t, int64_t,
                                   int64_t, int64_t, int64_t, bool, cudaStream_t);

}  // namespace meap::cuda
