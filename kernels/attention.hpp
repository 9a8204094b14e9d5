// Host-side launchers of the causal grouped-query flash attention (kernels/attention_forward.cu,
// kernels/attention_backward.cu). The contract is Backend::attention_forward/backward's
// (include/meap/backend/backend.hpp) on bf16 storage: pointers are device pointers, launches are
// asynchronous on `stream`, and every launch is checked (meap::Error on failure). No buffer may
// alias another. Design, tiling and the determinism argument: docs/kernels.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

struct AttentionShape {
  int64_t batch, seq_len, n_heads, n_kv_heads, head_dim;
};

// head_dim 64 or 128, n_kv_heads divides n_heads, seq_len >= 1, batch >= 1, and the sizes fit
// the launch grid (heads and batch <= 65535, seq_len < 2^31).
bool flash_attention_supports(const AttentionShape& shape);

// qkv (B, T, Hq + 2*Hkv, D) bf16: query heads, then key heads, then value heads (RoPE already
// applied). Query head h reads kv head h / (Hq / Hkv); scale = 1/sqrt(D).
// out (B, T, Hq, D) bf16, lse (B, Hq, T) fp32: natural log-sum-exp of each row's scaled causal
// scores. Every element of out and lse is written. segments (B, T) int32 document ids of
// packed rows, non-decreasing along each row (not checked), or null: query t reads key s <= t
// only when both have the same id; whole key tiles before a document's start are skipped.
void flash_attention_forward(uint16_t* out, float* lse, const uint16_t* qkv,
                             const int32_t* segments, const AttentionShape& shape,
                             cudaStream_t stream);

// fp32 scratch the backward needs: Delta = rowsum(dO * O), (B, Hq, T). Its contents on entry
// do not matter.
size_t flash_attention_backward_workspace_bytes(const AttentionShape& shape);

// dqkv (B, T, Hq + 2*Hkv, D) bf16 OVERWRITTEN: dQ in the query heads, dK and dV in the kv
// heads (summed over the query heads of each group). dout, out (B, T, Hq, D) bf16; lse from
// the forward, segments as in the forward. Deterministic: no atomics, a fixed summation order,
// bitwise-repeatable.
void flash_attention_backward(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv,
                              const uint16_t* out, const float* lse, const int32_t* segments,
                              void* workspace, const AttentionShape& shape, cudaStream_t stream);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
