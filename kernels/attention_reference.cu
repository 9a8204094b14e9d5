// Launchers of the reference causal GQA attention (kernels in kernels/attention_reference.cuh).
#include <cmath>

#include "attention_reference.cuh"
#include "attention_reference.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

using namespace attention_reference_kernels;

Dims make_dims(int64_t b, int64_t t, int hq, int hkv, int d, const int32_t* segments) {
  MEAP_CHECK(hq > 0 && hkv > 0 && hq % hkv == 0, "attention: ", hq,
             " query heads do not group over ", hkv, " kv heads");
  if (d <= 0 || d > kAttentionReferenceMaxHeadDim)
    fail("cuda attention: head dim ", d, " is outside what the kernels support (1 to ",
         kAttentionReferenceMaxHeadDim, ")");
  MEAP_CHECK(t < (int64_t{1} << 31) && hq <= 65535 && b <= 65535,
             "attention reference: grid too large (t ", t, ", heads ", hq, ", batch ", b, ")");
  return make_dims_unchecked(t, hq, hkv, d, segments);
}

}  // namespace

template <class S>
void attention_reference_forward(S* out, float* lse, const S* qkv, const int32_t* segments,
                                 int64_t b, int64_t t, int hq, int hkv, int d,
                                 cudaStream_t stream) {
  if (b == 0 || t == 0) return;
  const Dims k = make_dims(b, t, hq, hkv, d, segments);
  const dim3 grid(static_cast<unsigned>(t), static_cast<unsigned>(hq), static_cast<unsigned>(b));
  launch(attention_forward_kernel<S>, grid, block_threads(d), forward_smem_bytes(d), stream, out,
         lse, qkv, k);
}

size_t attention_reference_backward_scratch_bytes(int64_t b, int64_t t, int hq) {
  return static_cast<size_t>(b * t * hq) * sizeof(float);
}

template <class S>
void attention_reference_backward(S* dqkv, const S* dout, const S* qkv, const S* out,
                                  const float* lse, const int32_t* segments, int64_t b, int64_t t,
                                  int hq, int hkv, int d, void* scratch, size_t scratch_bytes,
                                  cudaStream_t stream) {
  if (b == 0 || t == 0) return;
  const Dims k = make_dims(b, t, hq, hkv, d, segments);
  MEAP_CHECK(scratch_bytes >= attention_reference_backward_scratch_bytes(b, t, hq),
             "attention backward scratch too small");
  float* delta = static_cast<float*>(scratch);  // (b, hq, t)
  const dim3 grid_q(static_cast<unsigned>(t), static_cast<unsigned>(hq), static_cast<unsigned>(b));
  launch(attention_backward_dq_kernel<S>, grid_q, block_threads(d), backward_smem_bytes(d), stream,
         dqkv, delta, dout, qkv, out, lse, k);
  const dim3 grid_kv(static_cast<unsigned>(t), static_cast<unsigned>(hkv),
                     static_cast<unsigned>(b));
  launch(attention_backward_dkv_kernel<S>, grid_kv, block_threads(d), backward_smem_bytes(d),
         stream, dqkv, dout, qkv, lse, delta, k);
}

template void attention_reference_forward<float>(float*, float*, const float*, const int32_t*,
                                                 int64_t, int64_t, int, int, int, cudaStream_t);
template void attention_reference_forward<uint16_t>(uint16_t*, float*, const uint16_t*,
                                                    const int32_t*, int64_t, int64_t, int, int,
                                                    int, cudaStream_t);
template void attention_reference_backward<float>(float*, const float*, const float*, const float*,
                                                  const float*, const int32_t*, int64_t, int64_t,
                                                  int, int, int, void*, size_t, cudaStream_t);
template void attention_reference_backward<uint16_t>(uint16_t*, const uint16_t*, const uint16_t*,
                                                     const uint16_t*, const float*, const int32_t*,
                                                     int64_t, int64_t, int, int, int, void*,
                                                     size_t, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
