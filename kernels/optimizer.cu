// Launchers of the optimizer kernels (kernels/optimizer.cuh): deterministic sum of squares,
// scale, AdamW (fp32 master, optional bf16 working copy).
#include "optimizer.cuh"
#include "optimizer.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace optimizer_kernels;
using detail::kThreads;

size_t sum_squares_scratch_bytes() { return kMaxPartials * sizeof(double); }

void sum_squares(double* result, const float* x, int64_t n, void* scratch, size_t scratch_bytes,
                 cudaStream_t stream) {
  MEAP_CHECK(scratch_bytes >= sum_squares_scratch_bytes(), "sum_squares scratch too small");
  auto* partial = static_cast<double*>(scratch);
  const int blocks = partial_blocks(n);
  launch(sum_squares_partial_kernel<float>, blocks, kThreads, 0, stream, partial, x, n);
  launch(sum_squares_final_kernel, 1, kThreads, 0, stream, result, partial, blocks);
}

void scale(float* x, int64_t n, double factor, cudaStream_t stream) {
  if (n == 0) return;
  launch(scale_kernel<float>, detail::grid_for(n), kThreads, 0, stream, x, n,
         static_cast<float>(factor));
}

void adamw_update(float* param, const float* grad, float* m, float* v, uint16_t* working_copy,
                  int64_t n, double lr, double beta1, double beta2, double eps, double weight_decay,
                  int64_t step, cudaStream_t stream) {
  if (n == 0) return;
  const AdamWConstants k = adamw_constants(lr, beta1, beta2, eps, weight_decay, step);
  launch(adamw_kernel, detail::grid_for(n), kThreads, 0, stream, param, grad, m, v, working_copy, n,
         k);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
