// CpuBackend: the reference implementation of meap::Backend. Backend has checked each op
// (src/backend/backend.cpp); this dispatches it to the float or double kernel by dtype.
#include "cpu_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu_kernels.hpp"
#include "fast_kernels.hpp"

namespace meap {

// Runs body with T the kernel instance's type: float (f32) or double (f64).
#define MEAP_CPU_DISPATCH(dt, body) \
  do {                              \
    if ((dt) == DType::f32) {       \
      using T = float;              \
      body;                         \
    } else {                        \
      using T = double;             \
      body;                         \
    }                               \
  } while (0)

void* CpuBackend::allocate(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p && bytes) fail("out of host memory allocating ", bytes, " bytes");
  return p;
}

void CpuBackend::deallocate(void* ptr) { std::free(ptr); }

void CpuBackend::copy_from_host(const Tensor& dst, const void* host) {
  std::memcpy(dst.data, host, dst.nbytes());
}

void CpuBackend::copy_to_host(void* host, const Tensor& src) {
  std::memcpy(host, src.data, src.nbytes());
}

void CpuBackend::fill_zero(const Tensor& t) { std::memset(t.data, 0, t.nbytes()); }

// The pairs Backend::cast allows: the same dtype, f32 <-> bf16, f32 <-> f64.
void CpuBackend::do_cast(const Tensor& dst, const Tensor& src) {
  const int64_t n = src.numel();
  if (dst.dtype == src.dtype) {
    std::memcpy(dst.data, src.data, src.nbytes());
  } else if (dst.dtype == DType::bf16) {
    const float* s = src.as<float>();
    uint16_t* d = dst.as<uint16_t>();
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
  } else if (src.dtype == DType::bf16) {
    const uint16_t* s = src.as<uint16_t>();
    float* d = dst.as<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
  } else if (dst.dtype == DType::f64) {
    std::copy_n(src.as<float>(), n, dst.as<double>());
  } else {
    const double* s = src.as<double>();
    float* d = dst.as<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
  }
}

void CpuBackend::do_embedding_forward(const Tensor& out, const Tensor& tokens,
                                      const Tensor& table) {
  const int64_t n = tokens.numel(), c = table.dim(-1);
  MEAP_CPU_DISPATCH(out.dtype,
                    cpu::embedding_forward(out.as<T>(), tokens.as<int32_t>(), table.as<T>(), n, c));
}

void CpuBackend::do_embedding_backward(const Tensor& dtable, const Tensor& dout,
                                       const Tensor& tokens) {
  const int64_t n = tokens.numel(), v = dtable.dim(0), c = dtable.dim(-1);
  if (fast(dout.dtype))
    return cpu::fast::embedding_backward(dtable.as<float>(), dout.as<float>(),
                                         tokens.as<int32_t>(), n, c);
  MEAP_CPU_DISPATCH(dout.dtype, cpu::embedding_backward(dtable.as<T>(), dout.as<T>(),
                                                        tokens.as<int32_t>(), n, v, c));
}

void CpuBackend::do_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                    const Tensor& weight, double eps) {
  const int64_t c = weight.numel(), n = x.numel() / c;
  if (fast(x.dtype))
    return cpu::fast::rmsnorm_forward(out.as<float>(), rstd.as<float>(), x.as<float>(),
                                      weight.as<float>(), n, c, eps);
  MEAP_CPU_DISPATCH(x.dtype, cpu::rmsnorm_forward(out.as<T>(), rstd.as<T>(), x.as<T>(),
                                                  weight.as<T>(), n, c, eps));
}

void CpuBackend::do_rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                                     const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const int64_t c = weight.numel(), n = x.numel() / c;
  if (fast(x.dtype))
    return cpu::fast::rmsnorm_backward(dx.as<float>(), dweight.as<float>(), dout.as<float>(),
                                       x.as<float>(), weight.as<float>(), rstd.as<float>(), n,
                                       c);
  MEAP_CPU_DISPATCH(x.dtype, cpu::rmsnorm_backward(dx.as<T>(), dweight.as<T>(), dout.as<T>(),
                                                   x.as<T>(), weight.as<T>(), rstd.as<T>(), n, c));
}

void CpuBackend::do_matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) {
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  MEAP_CPU_DISPATCH(x.dtype, cpu::matmul_forward(out.as<T>(), x.as<T>(), w.as<T>(), n, ic, oc));
}

void CpuBackend::do_matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                    const Tensor& x, const Tensor& w) {
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  MEAP_CPU_DISPATCH(x.dtype, cpu::matmul_backward(dx.empty() ? nullptr : dx.as<T>(), dw.as<T>(),
                                                  dout.as<T>(), x.as<T>(), w.as<T>(), n, ic, oc));
}

void CpuBackend::do_rope(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                         const Tensor& positions, bool inverse) {
  const int64_t b = x.dim(0), t = x.dim(1), h = x.dim(2), d = x.dim(3);
  const int32_t* pos = positions.empty() ? nullptr : positions.as<int32_t>();
  MEAP_CPU_DISPATCH(x.dtype, cpu::rope_apply(x.as<T>(), cos.as<T>(), sin.as<T>(), pos, b, t, h,
                                             n_rot_heads, d, inverse));
}

void CpuBackend::do_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                      int n_heads, int n_kv_heads, const Tensor& segments) {
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  const int32_t* seg = segments.empty() ? nullptr : segments.as<int32_t>();
  if (fast(qkv.dtype))
    return cpu::fast::attention_forward(out.as<float>(), lse.as<float>(), qkv.as<float>(), seg,
                                        b, t, n_heads, n_kv_heads, d);
  MEAP_CPU_DISPATCH(qkv.dtype, cpu::attention_forward(out.as<T>(), lse.as<T>(), qkv.as<T>(), seg,
                                                      b, t, n_heads, n_kv_heads, d));
}

void CpuBackend::do_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                       const Tensor& out, const Tensor& lse, int n_heads,
                                       int n_kv_heads, const Tensor& segments) {
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  const int32_t* seg = segments.empty() ? nullptr : segments.as<int32_t>();
  if (fast(qkv.dtype))
    return cpu::fast::attention_backward(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(),
                                         out.as<float>(), lse.as<float>(), seg, b, t, n_heads,
                                         n_kv_heads, d);
  MEAP_CPU_DISPATCH(qkv.dtype,
                    cpu::attention_backward(dqkv.as<T>(), dout.as<T>(), qkv.as<T>(), out.as<T>(),
                                            lse.as<T>(), seg, b, t, n_heads, n_kv_heads, d));
}

void CpuBackend::do_swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  const int64_t f = out.dim(-1), n = out.numel() / f;
  if (fast(out.dtype))
    return cpu::fast::swiglu_forward(out.as<float>(), gate_up.as<float>(), n, f);
  MEAP_CPU_DISPATCH(out.dtype, cpu::swiglu_forward(out.as<T>(), gate_up.as<T>(), n, f));
}

void CpuBackend::do_swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                                    const Tensor& gate_up) {
  const int64_t f = dout.dim(-1), n = dout.numel() / f;
  if (fast(dout.dtype))
    return cpu::fast::swiglu_backward(dgate_up.as<float>(), dout.as<float>(),
                                      gate_up.as<float>(), n, f);
  MEAP_CPU_DISPATCH(dout.dtype,
                    cpu::swiglu_backward(dgate_up.as<T>(), dout.as<T>(), gate_up.as<T>(), n, f));
}

void CpuBackend::do_add_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  MEAP_CPU_DISPATCH(out.dtype, cpu::add_forward(out.as<T>(), a.as<T>(), b.as<T>(), out.numel()));
}

void CpuBackend::do_cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                                   const Tensor& logits, const Tensor& targets,
                                                   const Tensor& weights, double grad_scale) {
  const int64_t v = logits.dim(-1), n = logits.numel() / v;
  if (fast(logits.dtype))
    return cpu::fast::cross_entropy_forward_backward(
        losses.as<float>(), dlogits.as<float>(), logits.as<float>(), targets.as<int32_t>(),
        weights.as<float>(), n, v, grad_scale);
  MEAP_CPU_DISPATCH(logits.dtype,
                    cpu::cross_entropy_forward_backward(losses.as<T>(), dlogits.as<T>(),
                                                        logits.as<T>(), targets.as<int32_t>(),
                                                        weights.as<float>(), n, v, grad_scale));
}

double CpuBackend::do_sum_squares(const Tensor& t) {
  double result = 0;
  MEAP_CPU_DISPATCH(t.dtype, result = cpu::sum_squares(t.as<T>(), t.numel()));
  return result;
}

void CpuBackend::do_scale(const Tensor& t, double factor) {
  MEAP_CPU_DISPATCH(t.dtype, cpu::scale(t.as<T>(), t.numel(), factor));
}

void CpuBackend::do_adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                                 const Tensor& v, const AdamWStep& hp, const Tensor& working_copy) {
  if (fast(param.dtype))
    cpu::fast::adamw_update(param.as<float>(), grad.as<float>(), m.as<float>(), v.as<float>(),
                            param.numel(), hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay,
                            hp.step);
  else
    MEAP_CPU_DISPATCH(param.dtype, cpu::adamw_update(param.as<T>(), grad.as<T>(), m.as<T>(),
                                                     v.as<T>(), param.numel(), hp.lr, hp.beta1,
                                                     hp.beta2, hp.eps, hp.weight_decay, hp.step));
  if (!working_copy.empty()) do_cast(working_copy, param);
}

}  // namespace meap
