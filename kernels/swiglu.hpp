// Host launchers of the SwiGLU kernels (kernels/swiglu.cu). Device pointers; asynchronous on
// `stream`; launch errors are thrown as meap::Error. S is float (f32) or uint16_t (bf16 bits).
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// gate_up (n, 2f) = [gate | up] per row; out (n, f) = silu(gate) * up.
template <class S>
void swiglu_forward(S* out, const S* gate_up, int64_t n, int64_t f, cudaStream_t stream);

// dgate_up (n, 2f) overwritten from dout (n, f).
template <class S>
void swiglu_backward(S* dgate_up, const S* dout, const S* gate_up, int64_t n, int64_t f,
                     cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
