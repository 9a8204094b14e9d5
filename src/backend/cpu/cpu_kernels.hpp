// The CPU reference kernels: plain loops over raw pointers, templated on the scalar type
// (float for training, double for gradient checks). Shapes as in meap/backend.hpp.
// Parallel loops give each thread disjoint outputs and fixed reduction orders, so
// results are bit-identical from run to run whatever the thread count.
#pragma once

#include <cstdint>

namespace meap::cpu {

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t c);
template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v,
                        int64_t c);

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, int64_t n, int64_t c,
                     double eps);
template <class T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight,
                      const T* rstd, int64_t n, int64_t c);

template <class T>
void matmul_forward(T* out, const T* x, const T* w, int64_t n, int64_t ic, int64_t oc);
template <class T>
void matmul_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, int64_t n,
                     int64_t ic, int64_t oc);

// positions (B*T) or null (token t at position t).
template <class T>
void rope_apply(T* x, const T* cos, const T* sin, const int32_t* positions, int64_t b, int64_t t,
                int64_t h_total, int64_t h_rot, int64_t d, bool inverse);

// segments (B*T) document ids or null (one document per row).
template <class T>
void attention_forward(T* out, T* lse, const T* qkv, const int32_t* segments, int64_t b,
                       int64_t t, int64_t hq, int64_t hkv, int64_t d);
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const int32_t* segments, int64_t b, int64_t t, int64_t hq, int64_t hkv,
                        int64_t d);

template <class T>
void swiglu_forward(T* out, const T* gate_up, int64_t n, int64_t f);
template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t n, int64_t f);

template <class T>
void add_forward(T* out, const T* a, const T* b, int64_t n);

template <class T>
void cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale);

template <class T>
double sum_squares(const T* x, int64_t n);
template <class T>
void scale(T* x, int64_t n, double factor);
template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step);

}  // namespace meap::cpu
