// Elementwise kernels: the residual add, fp32 and bf16.
#include <cuda_bf16.h>

#include "elementwise.hpp"

namespace meap::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void add_bf16_kernel(__nv_bfloat16* out, const __nv_bfloat16* a,
                                const __nv_bfloat16* b, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

}  // namespace

void add_f32(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  add_f32_kernel<<<grid_for(n), kThreads, 0, stream>>>(out, a, b, n);
}

void add_bf16(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n,
              cudaStream_t stream) {
  add_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(
      reinterpret_cast<__nv_bfloat16*>(out), reinterpret_cast<const __nv_bfloat16*>(a),
      reinterpret_cast<const __nv_bfloat16*>(b), n);
}

}  // namespace meap::cuda
