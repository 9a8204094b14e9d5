// Launchers of the optimizer kernels (kernels/optimizer.cuh): deterministic sum of squares,
// scale, AdamW (fp32 master, optional bf16 working copy).
#include "backend/cuda/cuda_check.hpp"
#include "optimizer.cuh"
#include "optimizer.hpp"

namespace meap::cuda {

using namespace optimizer_kernels;
using detail::kThreads;

size_t sum_squares_scratch_bytes() { return kMaxPartials * sizeof(double); }

template <class S>
void sum_squares(double* result, const S* x, int64_t n, void* scratch, size_t scratch_bytes,
                 cudaStream_t stream) {
  MEAP_CHECK(scratch_bytes >= sum_squares_scratch_bytes(), "sum_squares scratch too small");
  auto* partial = static_cast<double*>(scratch);
  const int blocks = partial_blocks(n);
  sum_squares_partial_kernel<S><<<blocks, kThreads, 0, stream>>>(partial, x, n);
  MEAP_CUDA_CHECK_LAUNCH();
  sum_squares_final_kernel<<<1, kThreads, 0, stream>>>(result, partial, blocks);
  MEAP_CUDA_CHECK_LAUNCH();
}

template <class S>
void scale(S* x, int64_t n, double factor, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<S><<<detail::grid_for(n), kThreads, 0, stream>>>(x, n, static_cast<float>(factor));
  MEAP_CUDA_CHECK_LAUNCH();
}

void adamw_update(float* param, const float* grad, float* m, float* v, uint16_t* working_copy,
                  int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step, cudaStream_t stream) {
  if (n == 0) return;
  const AdamWConstants k = adamw_constants(lr, beta1, beta2, eps, weight_decay, step);
  adamw_kernel<<<detail::grid_for(n), kThreads, 0, stream>>>(param, grad, m, v, working_copy, n,
                                                            k);
  MEAP_CUDA_CHECK_LAUNCH();
}

template void sum_squares<float>(double*, const float*, int64_t, void*, size_t, cudaStream_t);
template void sum_squares<uint16_t>(double*, const uint16_t*, int64_t, void*, size_t,
                                    cudaStream_t);
template void scale<float>(float*, int64_t, double, cudaStream_t);
template void scale<uint16_t>(uint16_t*, int64_t, double, cudaStream_t);

}  // namespace meap::cuda
