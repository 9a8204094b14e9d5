// Host launchers of the RMSNorm kernels (kernels/rmsnorm.cu). Device pointers; asynchronous
// on `stream`; launch errors are thrown as meap::Error. S is the storage type of x, out,
// weight, dout and dx: float (f32) or uint16_t (bf16 bits); rstd and dweight are f32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// out (n, c) = x * rstd * weight (c); rstd (n) = 1 / sqrt(mean(x^2) + eps).
template <class S>
void rmsnorm_forward(S* out, float* rstd, const S* x, const S* weight, int64_t n, int64_t c,
                     double eps, cudaStream_t stream);

// Device scratch (bytes) rmsnorm_backward needs for the dweight partial sums.
size_t rmsnorm_backward_scratch_bytes(int64_t n, int64_t c);

// dx (n, c) += rstd * (g - xhat * mean(g * xhat)) with g = dout * weight, xhat = x * rstd;
// dweight (c) += sum over rows of dout * xhat. dweight is reduced without atomics: fixed
// row chunks write partial sums to `scratch`, then one pass adds them in chunk order.
template <class S>
void rmsnorm_backward(S* dx, float* dweight, const S* dout, const S* x, const S* weight,
                      const float* rstd, int64_t n, int64_t c, void* scratch,
                      size_t scratch_bytes, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
