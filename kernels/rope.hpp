// Host launcher of the rotary-embedding kernel (kernels/rope.cu). Device pointers;
// asynchronous on `stream`; launch errors are thrown as meap::Error. S is the storage type
// of x: float (f32) or uint16_t (bf16 bits); the cos/sin tables are f32.
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// Hugging Face convention: for j < d/2 the pair (x[j], x[j + d/2]) of heads [0, h_rot) of
// x (b, t, h_total, d) is rotated in place by the angle whose cos/sin are tables (P, d/2)
// at [pos, j], pos = positions[bi * t + ti] (positions (b, t) i32, each in [0, P)) or ti when
// positions is null; inverse = true rotates by minus that angle (the backward).
template <class S>
void rope_apply(S* x, const float* cos, const float* sin, const int32_t* positions, int64_t b,
                int64_t t, int64_t h_total, int64_t h_rot, int64_t d, bool inverse,
                cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
