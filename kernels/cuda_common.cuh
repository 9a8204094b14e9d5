// Device helpers shared by the kernels (included by the kernel headers kernels/*.cuh): bf16
// storage as uint16_t bit patterns with the exact rounding of meap::f32_to_bf16, fp32
// loads/stores of either storage type, deterministic warp/block reductions, the dynamic
// shared memory, launch-size helpers, and launch(), the one way kernels/*.cu launch a kernel.
// Under MEAP_CUDA_EMULATION (tests/cuda_emulator.hpp) the same code runs on the host; the
// emulator supplies the CUDA built-ins and dynamic_shared(), and launch() runs it there.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda::detail {

#ifndef MEAP_CUDA_EMULATION
// The launch's dynamic shared memory (its size is the launch's third argument), as T.
template <class T>
__device__ __forceinline__ T* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char meap_dynamic_smem[];
  return reinterpret_cast<T*>(meap_dynamic_smem);
}
#endif

// ---- bf16 <-> f32, bit-identical to meap::f32_to_bf16 / bf16_to_f32 (dtype.hpp) ----
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

// Storage type S is float (f32) or uint16_t (bf16 bits); math is always fp32.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(uint16_t x) { return bf16_bits_to_f32(x); }

template <class S>
__device__ __forceinline__ S from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ uint16_t from_f32<uint16_t>(float x) {
  return f32_to_bf16_bits(x);
}

// ---- reductions: fixed butterfly order, so results do not vary from run to run ----------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum (or max) over the whole block, returned to every thread. blockDim.x must be a multiple
// of 32 (at most 1024) and every thread of the block must call it. `shared` holds 32 T.
template <class T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // earlier readers of shared[] are done
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = lane < n_warps ? shared[lane] : T(0);
  r = warp_sum(r);  // every warp reduces the same partials in the same order
  return r;
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float r = lane < n_warps ? shared[lane] : -INFINITY;
  return warp_max(r);
}

// ---- launch sizes -------------------------------------------------------------------------
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (at least 1, at most 2^20 blocks).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > (int64_t{1} << 20)) blocks = int64_t{1} << 20;
  return static_cast<unsigned>(blocks);
}

}  // namespace meap::cuda::detail

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

template <class T>
struct as_param {
  using type = T;  // arguments convert to the kernel's parameters instead of being deduced
};

// kernel<<<grid, block, smem_bytes, stream>>>(args...), with the opt-in for more than 48 KiB of
// dynamic shared memory, and launch errors thrown as meap::Error. Under the emulator the
// kernel's source runs on the host (in the emulator's current schedule) and errors throw.
template <class... Params>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
            cudaStream_t stream, typename as_param<Params>::type... args) {
  if (smem_bytes > 48 * 1024)
    MEAP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem_bytes)));
#ifdef MEAP_CUDA_EMULATION
  (void)stream;
  emu::launch(grid, block, smem_bytes, [&] { kernel(args...); });
#else
  kernel<<<grid, block, smem_bytes, stream>>>(args...);
#endif
  MEAP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
