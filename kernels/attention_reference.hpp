// Host launchers of the reference causal grouped-query attention (kernels/attention_reference.cu):
// simple, exact (fp32 math, no atomics, bit-identical run to run) and for any head dim up to
// 1024, in fp32 or bf16 storage. It serves what the flash kernel does not. Device pointers;
// asynchronous on `stream`; launch errors are thrown as meap::Error. S is float (f32) or
// uint16_t (bf16 bits); lse is always f32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

// Largest head dim the reference kernels take (one thread per head-dim column).
constexpr int kAttentionReferenceMaxHeadDim = 1024;

// qkv (b, t, hq + 2 hkv, d): query heads, key heads, value heads; query head h reads kv head
// h / (hq / hkv). out (b, t, hq, d) = softmax(scale q k^T, causal) v, scale = 1/sqrt(d);
// lse (b, hq, t) = each row's log-sum-exp of the scaled scores. segments (b, t) i32 document
// ids, non-decreasing along a row, or null: query t reads key s <= t only within its document.
template <class S>
void attention_reference_forward(S* out, float* lse, const S* qkv, const int32_t* segments,
                                 int64_t b, int64_t t, int hq, int hkv, int d,
                                 cudaStream_t stream);

// Device scratch (bytes) the backward needs: rowsum(dout * out) per (b, hq, t), f32.
size_t attention_reference_backward_scratch_bytes(int64_t b, int64_t t, int hq);

// dqkv (b, t, hq + 2 hkv, d) overwritten: dQ, dK, dV from dout (b, t, hq, d) and the forward's
// qkv, out and lse (and the same segments).
template <class S>
void attention_reference_backward(S* dqkv, const S* dout, const S* qkv, const S* out,
                                  const float* lse, const int32_t* segments, int64_t b, int64_t t,
                                  int hq, int hkv, int d, void* scratch, size_t scratch_bytes,
                                  cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
