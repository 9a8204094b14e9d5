// Optimizer kernels: deterministic sum of squares, scale, AdamW (fp32 master, optional bf16
// working copy).
#include <cmath>

#include "backend/cuda/cuda_check.hpp"
#include "cuda_common.cuh"
#include "optimizer.hpp"

namespace meap::cuda {

namespace {

using detail::block_sum;
using detail::from_f32;
using detail::kThreads;
using detail::to_f32;

constexpr int kMaxPartials = 1024;          // blocks of the first sum_squares pass
constexpr int64_t kElementsPerBlock = 8192;  // before the grid reaches kMaxPartials

// Pass 1: block b grid-strides over x, squares summed in double, block-reduced into
// partial[b].
template <class S>
__global__ void sum_squares_partial_kernel(double* partial, const S* x, int64_t n) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = to_f32(x[i]);
    acc += v * v;
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2: one block sums the partials (thread t takes t, t + blockDim, ...; then the block
// reduction), a fixed order.
__global__ void sum_squares_final_kernel(double* result, const double* partial, int count) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int k = threadIdx.x; k < count; k += blockDim.x) acc += partial[k];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) *result = acc;
}

template <class S>
__global__ void scale_kernel(S* x, int64_t n, float factor) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f32<S>(to_f32(x[i]) * factor);
}

struct AdamWConstants {
  float lr, b1, b2, eps, wd, c1, c2;
};

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v,
                             uint16_t* working_copy, int64_t n, AdamWConstants k) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i];
    const float mi = k.b1 * m[i] + (1.0f - k.b1) * g;
    const float vi = k.b2 * v[i] + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float update = (mi * k.c1) / (sqrtf(vi * k.c2) + k.eps);
    const float p = param[i] - k.lr * (update + k.wd * param[i]);
    param[i] = p;
    if (working_copy) working_copy[i] = detail::f32_to_bf16_bits(p);
  }
}

int partial_blocks(int64_t n) {
  int64_t blocks = (n + kElementsPerBlock - 1) / kElementsPerBlock;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxPartials) blocks = kMaxPartials;
  return static_cast<int>(blocks);
}

}  // namespace

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
  // The constants are rounded to float exactly as the CPU reference does.
  AdamWConstants k;
  k.lr = static_cast<float>(lr);
  k.b1 = static_cast<float>(beta1);
  k.b2 = static_cast<float>(beta2);
  k.eps = static_cast<float>(eps);
  k.wd = static_cast<float>(weight_decay);
  k.c1 = static_cast<float>(1.0 / (1.0 - std::pow(beta1, static_cast<double>(step))));
  k.c2 = static_cast<float>(1.0 / (1.0 - std::pow(beta2, static_cast<double>(step))));
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
