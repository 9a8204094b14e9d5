// Host launchers of the dtype conversions (kernels/cast.cu). Device pointers; asynchronous on
// `stream`; launch errors are thrown as meap::Error.
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// dst (n, bf16 bits) = src (n) rounded to nearest even; bit-identical to meap::f32_to_bf16
// (NaN stays a quiet NaN).
void cast_f32_to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t stream);
// dst (n) = src (n, bf16 bits) widened exactly.
void cast_bf16_to_f32(float* dst, const uint16_t* src, int64_t n, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
