// Launchers of the flash-attention forward (kernels/attention_forward.cuh) and the shape check
// shared with the backward.
#include <cmath>

#include "attention.hpp"
#include "attention_forward.cuh"
#include "cuda_common.cuh"
#include "meap/core/error.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

template <int D>
void launch_forward(uint16_t* out, float* lse, const uint16_t* qkv, const int32_t* segments,
                    const AttentionShape& s, cudaStream_t stream) {
  const size_t smem = attn::forward_smem_bytes<D>();  // above the default 48 KiB at D = 128
  const dim3 grid(static_cast<unsigned>((s.seq_len + attn::kFwdRows - 1) / attn::kFwdRows),
                  static_cast<unsigned>(s.n_heads), static_cast<unsigned>(s.batch));
  const float scale_log2 =
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))) * attn::kLog2e;
  launch(attn::flash_forward_kernel<D>, grid, attn::kThreads, smem, stream,
         reinterpret_cast<__nv_bfloat16*>(out), lse, reinterpret_cast<const __nv_bfloat16*>(qkv),
         segments, static_cast<int>(s.seq_len), static_cast<int>(s.n_heads), static_cast<int>(s.n_kv_heads),
         scale_log2);
}

}  // namespace

bool flash_attention_supports(const AttentionShape& s) {
  return (s.head_dim == 64 || s.head_dim == 128) && s.batch >= 1 && s.batch <= 65535 &&
         s.seq_len >= 1 && s.seq_len < (int64_t{1} << 31) && s.n_kv_heads >= 1 && s.n_heads >= 1 &&
         s.n_heads <= 65535 && s.n_heads % s.n_kv_heads == 0;
}

void flash_attention_forward(uint16_t* out, float* lse, const uint16_t* qkv,
                             const int32_t* segments, const AttentionShape& s,
                             cudaStream_t stream) {
  if (!flash_attention_supports(s))
    fail("flash attention does not support batch ", s.batch, ", seq_len ", s.seq_len, ", heads ",
         s.n_heads, "/", s.n_kv_heads, ", head_dim ", s.head_dim,
         " (needs head_dim 64 or 128 and n_kv_heads dividing n_heads)");
  if (s.head_dim == 64)
    launch_forward<64>(out, lse, qkv, segments, s, stream);
  else
    launch_forward<128>(out, lse, qkv, segments, s, stream);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
