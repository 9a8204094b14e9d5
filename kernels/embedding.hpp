// Host launchers of the token-embedding kernels (kernels/embedding.cu). Device pointers;
// asynchronous on `stream`; launch errors are thrown as meap::Error. S is the storage type
// of activations and the table: float (f32) or uint16_t (bf16 bits).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// out (n, c) = table (v, c)[tokens (n)]. A token outside [0, v) gives a row of NaN, so a
// bad id shows up in the loss instead of reading out of bounds.
template <class S>
void embedding_forward(S* out, const int32_t* tokens, const S* table, int64_t n, int64_t v,
                       int64_t c, cudaStream_t stream);

// Device scratch (bytes) that embedding_backward needs for n tokens over a vocabulary of v.
size_t embedding_backward_scratch_bytes(int64_t n, int64_t v);

// dtable (v, c) f32 += scatter of dout (n, c) by tokens (n). Deterministic: the tokens are
// stably sorted with their positions, then one block per run of equal tokens adds the rows
// into dtable in position order (the CPU reference's order). Tokens outside [0, v) are
// skipped. `scratch` holds embedding_backward_scratch_bytes(n, v) bytes.
template <class S>
void embedding_backward(float* dtable, const S* dout, const int32_t* tokens, int64_t n,
                        int64_t v, int64_t c, void* scratch, size_t scratch_bytes,
                        cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
