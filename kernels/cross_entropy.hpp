// Host launcher of the fused softmax + cross-entropy kernel (kernels/cross_entropy.cu).
// Device pointers; asynchronous on `stream`; launch errors are thrown as meap::Error.
// S is the storage type of logits and dlogits: float (f32) or uint16_t (bf16 bits).
#pragma once

#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// logits (n, v), targets (n) i32, weights (n) f32. One block per row:
//   losses (n) f32 = logsumexp(row) - row[target]   (0 where weight is 0; target not read),
//   dlogits (n, v) = (softmax(row) - onehot(target)) * weight * grad_scale.
// dlogits may alias logits: each row is read completely before it is overwritten, and the
// probabilities are never stored. A target outside [0, v) at a weighted position gives NaN.
template <class S>
void cross_entropy_forward_backward(float* losses, S* dlogits, const S* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
