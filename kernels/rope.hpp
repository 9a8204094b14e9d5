// Host launcher of the rotary-embedding kernel (kernels/rope.cu). Device pointers;
// asynchronous on `stream`; launch errors are thrown as meap::Error. S is the storage type
// of x: float (f32) or uint16_t (bf16 bits); the cos/sin tables are f32.
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// Hugging Face convention: for j < d/2 the pair (x[j], x[j + d/2]) of heads [0, h_rot) of
// x (b, t, h_total, d) is rotated in place by the angle whose cos/sin are tables (t, d/2)
// at [ti, j]; inverse = true rotates by minus that angle (the backward).
template <class S>
void rope_apply(S* x, const float* cos, const float* sin, int64_t b, int64_t t,
                int64_t h_total, int64_t h_rot, int64_t d, bool inverse, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
