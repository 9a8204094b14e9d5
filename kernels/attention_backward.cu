// Launchers of the flash-attention backward (kernels/attention_backward.cuh): Delta, then
// dK/dV, then dQ, in stream order. The workspace holds Delta.
#include <cmath>

#include "attention.hpp"
#include "attention_backward.cuh"
#include "cuda_common.cuh"
#include "meap/core/error.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

template <int D>
void launch_backward(uint16_t* dqkv_u, const uint16_t* dout_u, const uint16_t* qkv_u,
                     const uint16_t* out_u, const float* lse, const int32_t* segments,
                     float* delta, const AttentionShape& s, cudaStream_t stream) {
  using bf16 = __nv_bfloat16;
  auto* dqkv = reinterpret_cast<bf16*>(dqkv_u);
  const auto* dout = reinterpret_cast<const bf16*>(dout_u);
  const auto* qkv = reinterpret_cast<const bf16*>(qkv_u);
  const auto* out = reinterpret_cast<const bf16*>(out_u);
  const int T = static_cast<int>(s.seq_len), Hq = static_cast<int>(s.n_heads),
            Hkv = static_cast<int>(s.n_kv_heads);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const float scale_log2 = scale * attn::kLog2e;

  const int64_t n_rows = s.batch * s.seq_len * s.n_heads;
  const int64_t delta_blocks = (n_rows * 32 + attn::kDeltaThreads - 1) / attn::kDeltaThreads;
  launch(attn::attention_delta_kernel<D>, static_cast<unsigned>(delta_blocks), attn::kDeltaThreads,
         0, stream, delta, dout, out, n_rows, T, Hq);

  const auto n_tiles = static_cast<unsigned>((s.seq_len + attn::kBwdTile - 1) / attn::kBwdTile);
  const size_t dkdv_smem = attn::dkdv_smem_bytes<D>();
  launch(attn::attention_dkdv_kernel<D>,
         dim3(n_tiles, static_cast<unsigned>(Hkv), static_cast<unsigned>(s.batch)), attn::kThreads,
         dkdv_smem, stream, dqkv, dout, qkv, lse, delta, segments, T, Hq, Hkv, scale,
         scale_log2);

  const size_t dq_smem = attn::dq_smem_bytes<D>();
  launch(attn::attention_dq_kernel<D>,
         dim3(n_tiles, static_cast<unsigned>(Hq), static_cast<unsigned>(s.batch)), attn::kThreads,
         dq_smem, stream, dqkv, dout, qkv, lse, delta, segments, T, Hq, Hkv, scale,
         scale_log2);
}

}  // namespace

size_t flash_attention_backward_workspace_bytes(const AttentionShape& s) {
  const size_t delta = static_cast<size_t>(s.batch * s.n_heads * s.seq_len) * sizeof(float);
  return (delta + 255) / 256 * 256;
}

void flash_attention_backward(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv,
                              const uint16_t* out, const float* lse, const int32_t* segments,
                              void* workspace, const AttentionShape& s, cudaStream_t stream) {
  if (!flash_attention_supports(s))
    fail("flash attention backward does not support batch ", s.batch, ", seq_len ", s.seq_len,
         ", heads ", s.n_heads, "/", s.n_kv_heads, ", head_dim ", s.head_dim,
         " (needs head_dim 64 or 128 and n_kv_heads dividing n_heads)");
  if (workspace == nullptr) fail("flash attention backward needs a workspace");
  auto* delta = static_cast<float*>(workspace);
  if (s.head_dim == 64)
    launch_backward<64>(dqkv, dout, qkv, out, lse, segments, delta, s, stream);
  else
    launch_backward<128>(dqkv, dout, qkv, out, lse, segments, delta, s, stream);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
