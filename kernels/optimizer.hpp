// Host launchers of the optimizer kernels (kernels/optimizer.cu): the deterministic sum of
// squares (global gradient norm), scaling (clipping) and AdamW. Device pointers; asynchronous
// on `stream`; launch errors are thrown as meap::Error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// Device scratch (bytes) sum_squares needs (its per-block double partials).
size_t sum_squares_scratch_bytes();

// *result (one device double) = sum of x[i]^2 over x (n).
// Squares are accumulated in double by a grid whose size depends only on n, each block's
// partial reduced in a fixed order, then the partials summed in block order: bit-identical
// from run to run.
void sum_squares(double* result, const float* x, int64_t n, void* scratch, size_t scratch_bytes,
                 cudaStream_t stream);

// x (n) *= factor (rounded to float first, as the CPU does).
void scale(float* x, int64_t n, double factor, cudaStream_t stream);

// One AdamW step on fp32 param/grad/m/v (n), with the CPU reference's formulas:
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
//   param -= lr * ((m c1) / (sqrt(v c2) + eps) + weight_decay * param),
// c1 = 1 / (1 - beta1^step), c2 = 1 / (1 - beta2^step). working_copy (n, bf16 bits) or null
// receives the updated param rounded to nearest even.
void adamw_update(float* param, const float* grad, float* m, float* v, uint16_t* working_copy,
                  int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
