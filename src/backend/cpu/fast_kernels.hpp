// The fast f32 CPU kernels (CpuKernels::fast): same contracts and shapes as the reference
// kernels of cpu_kernels.hpp, which stay the oracle they are tested against
// (tests/unit/test_cpu_fast_kernels.cpp). Blocked attention on BLAS, vectorised elementwise
// passes. Deterministic: each output is computed by one thread in a fixed order, so results
// do not depend on the thread count.
#pragma once

#include <cstdint>

namespace meap::cpu::fast {

// Query rows per block of the blocked attention: a thread holds (kBlock, T) scores.
inline constexpr int64_t kAttentionBlock = 64;

// qkv (B, T, Hq + 2Hkv, D) -> out (B, T, Hq, D), lse (B, Hq, T). segments (B*T) document
// ids, non-decreasing along each row (documents are contiguous runs), or null.
void attention_forward(float* out, float* lse, const float* qkv, const int32_t* segments,
                       int64_t b, int64_t t, int64_t hq, int64_t hkv, int64_t d);
// dqkv (B, T, Hq + 2Hkv, D) overwritten; segments as in the forward.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, const int32_t* segments, int64_t b, int64_t t,
                        int64_t hq, int64_t hkv, int64_t d);

void swiglu_forward(float* out, const float* gate_up, int64_t n, int64_t f);
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t n,
                     int64_t f);

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t n,
                     int64_t c, double eps);
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                      const float* weight, const float* rstd, int64_t n, int64_t c);

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t n,
                        int64_t c);

void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale);

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step);

}  // namespace meap::cpu::fast
