// CpuBackend: the reference implementation of meap::Backend. Checks shapes, then
// dispatches each op to the float or double kernel by the tensors' dtype (the fast f32
// kernel where one exists and the backend was built with CpuKernels::fast).
#include "cpu_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu_kernels.hpp"
#include "fast_kernels.hpp"

namespace meap {

namespace {

void require_same_float_type(std::initializer_list<const Tensor*> ts) {
  const DType dt = (*ts.begin())->dtype;
  MEAP_CHECK(dt == DType::f32 || dt == DType::f64, "CPU ops run in f32 or f64, got ",
             dtype_name(dt));
  for (const Tensor* t : ts) MEAP_CHECK(t->dtype == dt, "mixed dtypes in one op");
}

// Calls fn with a typed null pointer (float* or double*) selecting the kernel instance.
template <class Fn>
void dispatch(DType dt, Fn&& fn) {
  if (dt == DType::f32)
    fn(static_cast<float*>(nullptr));
  else
    fn(static_cast<double*>(nullptr));
}

}  // namespace

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

void CpuBackend::cast(const Tensor& dst, const Tensor& src) {
  const int64_t n = src.numel();
  MEAP_CHECK(dst.numel() == n, "cast of ", src.shape_string(), " into ", dst.shape_string());
  if (dst.dtype == src.dtype) {
    std::memcpy(dst.data, src.data, src.nbytes());
    return;
  }
  const auto unsupported = [&] {
    fail("cast from ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype), " is not supported");
  };
  if (src.dtype == DType::f32) {
    const float* s = src.as<float>();
    if (dst.dtype == DType::bf16) {
      uint16_t* d = dst.as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
    } else if (dst.dtype == DType::f64) {
      std::copy_n(s, n, dst.as<double>());
    } else {
      unsupported();
    }
  } else if (dst.dtype == DType::f32) {
    float* d = dst.as<float>();
    if (src.dtype == DType::bf16) {
      const uint16_t* s = src.as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
    } else if (src.dtype == DType::f64) {
      const double* s = src.as<double>();
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
    } else {
      unsupported();
    }
  } else {
    unsupported();
  }
}

void CpuBackend::embedding_forward(const Tensor& out, const Tensor& tokens,
                                   const Tensor& table) {
  require_same_float_type({&out, &table});
  const int64_t n = tokens.numel(), c = table.dim(-1);
  MEAP_CHECK(out.numel() == n * c, "embedding out shape");
  dispatch(out.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::embedding_forward(out.as<T>(), tokens.as<int32_t>(), table.as<T>(), n, c);
  });
}

void CpuBackend::embedding_backward(const Tensor& dtable, const Tensor& dout,
                                    const Tensor& tokens) {
  require_same_float_type({&dtable, &dout});
  const int64_t n = tokens.numel(), v = dtable.dim(0), c = dtable.dim(-1);
  MEAP_CHECK(dout.numel() == n * c, "embedding dout shape");
  if (fast(dout.dtype))
    return cpu::fast::embedding_backward(dtable.as<float>(), dout.as<float>(),
                                         tokens.as<int32_t>(), n, c);
  dispatch(dout.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::embedding_backward(dtable.as<T>(), dout.as<T>(), tokens.as<int32_t>(), n, v, c);
  });
}

void CpuBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                 const Tensor& weight, double eps) {
  require_same_float_type({&out, &rstd, &x, &weight});
  const int64_t c = weight.numel(), n = x.numel() / c;
  MEAP_CHECK(out.numel() == n * c && rstd.numel() == n, "rmsnorm shapes");
  if (fast(x.dtype))
    return cpu::fast::rmsnorm_forward(out.as<float>(), rstd.as<float>(), x.as<float>(),
                                      weight.as<float>(), n, c, eps);
  dispatch(x.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::rmsnorm_forward(out.as<T>(), rstd.as<T>(), x.as<T>(), weight.as<T>(), n, c, eps);
  });
}

void CpuBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                                  const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  require_same_float_type({&dx, &dweight, &dout, &x, &weight, &rstd});
  const int64_t c = weight.numel(), n = x.numel() / c;
  MEAP_CHECK(dx.numel() == n * c && dout.numel() == n * c && rstd.numel() == n,
             "rmsnorm backward shapes");
  if (fast(x.dtype))
    return cpu::fast::rmsnorm_backward(dx.as<float>(), dweight.as<float>(), dout.as<float>(),
                                       x.as<float>(), weight.as<float>(), rstd.as<float>(), n,
                                       c);
  dispatch(x.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::rmsnorm_backward(dx.as<T>(), dweight.as<T>(), dout.as<T>(), x.as<T>(), weight.as<T>(),
                          rstd.as<T>(), n, c);
  });
}

void CpuBackend::matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) {
  require_same_float_type({&out, &x, &w});
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  MEAP_CHECK(x.numel() == n * ic && out.numel() == n * oc, "matmul shapes: x ",
             x.shape_string(), " w ", w.shape_string(), " out ", out.shape_string());
  dispatch(x.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::matmul_forward(out.as<T>(), x.as<T>(), w.as<T>(), n, ic, oc);
  });
}

void CpuBackend::matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                 const Tensor& x, const Tensor& w) {
  require_same_float_type({&dw, &dout, &x, &w});
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  MEAP_CHECK(dout.numel() == n * oc && dw.numel() == oc * ic, "matmul backward shapes");
  MEAP_CHECK(dx.empty() || (dx.numel() == n * ic && dx.dtype == x.dtype), "matmul dx shape");
  dispatch(x.dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    cpu::matmul_backward(dx.empty() ? static_cast<T*>(nullptr) : dx.as<T>(), dw.as<T>(),
                         dout.as<T>(), x.as<T>(), w.as<T>(), n, ic, oc);
  });
}

void CpuBackend::rope_forward(const Tensor& x, int n_rot_heads, const Tensor& cos,
                              const Tensor& sin) {
  rope(x, n_rot_heads, cos, sin, false);
}

void CpuBackend::rope_backward(const Tensor& dx, int n_rot_heads, const Tensor& cos,
                               const Tensor& sin) {
  rope(dx, n_rot_heads, cos, sin, true);
}

void CpuBackend::rope(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                      bool inverse) {
  require_same_float_type({&x, &cos, &sin});
  MEAP_CHECK(x.ndim == 4 && n_rot_heads <= x.dim(2), "rope expects (B, T, H, D)");
  const int64_t b = x.dim(0), t = x.dim(1), h = x.dim(2), d = x.dim(3);
  MEAP_CHECK(d % 2 == 0 && cos.numel() >= t * d / 2 && sin.numel() >= t * d / 2,
             "rope tables");
  dispatch(x.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::rope_apply(x.as<T>(), cos.as<T>(), sin.as<T>(), b, t, h, n_rot_heads, d, inverse);
  });
}

void CpuBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                   int n_heads, int n_kv_heads) {
  require_same_float_type({&out, &lse, &qkv});
  MEAP_CHECK(qkv.ndim == 4 && qkv.dim(2) == n_heads + 2 * n_kv_heads &&
                 n_heads % n_kv_heads == 0,
             "attention qkv shape ", qkv.shape_string());
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  MEAP_CHECK(out.numel() == b * t * n_heads * d && lse.numel() == b * n_heads * t,
             "attention out/lse shapes");
  if (fast(qkv.dtype))
    return cpu::fast::attention_forward(out.as<float>(), lse.as<float>(), qkv.as<float>(), b,
                                        t, n_heads, n_kv_heads, d);
  dispatch(qkv.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::attention_forward(out.as<T>(), lse.as<T>(), qkv.as<T>(), b, t, n_heads, n_kv_heads, d);
  });
}

void CpuBackend::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                    const Tensor& out, const Tensor& lse, int n_heads,
                                    int n_kv_heads) {
  require_same_float_type({&dqkv, &dout, &qkv, &out, &lse});
  MEAP_CHECK(qkv.ndim == 4 && qkv.dim(2) == n_heads + 2 * n_kv_heads &&
                 dqkv.numel() == qkv.numel(),
             "attention backward shapes");
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  if (fast(qkv.dtype))
    return cpu::fast::attention_backward(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(),
                                         out.as<float>(), lse.as<float>(), b, t, n_heads,
                                         n_kv_heads, d);
  dispatch(qkv.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::attention_backward(dqkv.as<T>(), dout.as<T>(), qkv.as<T>(), out.as<T>(), lse.as<T>(),
                            b, t, n_heads, n_kv_heads, d);
  });
}

void CpuBackend::swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  require_same_float_type({&out, &gate_up});
  const int64_t f = out.dim(-1), n = out.numel() / f;
  MEAP_CHECK(gate_up.numel() == 2 * n * f, "swiglu shapes");
  if (fast(out.dtype))
    return cpu::fast::swiglu_forward(out.as<float>(), gate_up.as<float>(), n, f);
  dispatch(out.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::swiglu_forward(out.as<T>(), gate_up.as<T>(), n, f);
  });
}

void CpuBackend::swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                                 const Tensor& gate_up) {
  require_same_float_type({&dgate_up, &dout, &gate_up});
  const int64_t f = dout.dim(-1), n = dout.numel() / f;
  MEAP_CHECK(gate_up.numel() == 2 * n * f && dgate_up.numel() == 2 * n * f,
             "swiglu backward shapes");
  if (fast(dout.dtype))
    return cpu::fast::swiglu_backward(dgate_up.as<float>(), dout.as<float>(),
                                      gate_up.as<float>(), n, f);
  dispatch(dout.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::swiglu_backward(dgate_up.as<T>(), dout.as<T>(), gate_up.as<T>(), n, f);
  });
}

void CpuBackend::add_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  require_same_float_type({&out, &a, &b});
  MEAP_CHECK(out.numel() == a.numel() && a.numel() == b.numel(), "add shapes");
  dispatch(out.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::add_forward(out.as<T>(), a.as<T>(), b.as<T>(), out.numel());
  });
}

void CpuBackend::cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                                const Tensor& logits, const Tensor& targets,
                                                const Tensor& weights, double grad_scale) {
  require_same_float_type({&losses, &dlogits, &logits});
  const int64_t v = logits.dim(-1), n = logits.numel() / v;
  MEAP_CHECK(targets.numel() == n && weights.numel() == n && losses.numel() == n &&
                 dlogits.numel() == n * v,
             "cross-entropy shapes");
  if (fast(logits.dtype))
    return cpu::fast::cross_entropy_forward_backward(
        losses.as<float>(), dlogits.as<float>(), logits.as<float>(), targets.as<int32_t>(),
        weights.as<float>(), n, v, grad_scale);
  dispatch(logits.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::cross_entropy_forward_backward(losses.as<T>(), dlogits.as<T>(), logits.as<T>(),
                                        targets.as<int32_t>(), weights.as<float>(), n, v,
                                        grad_scale);
  });
}

double CpuBackend::sum_squares(const Tensor& t) {
  require_same_float_type({&t});
  double result = 0;
  dispatch(t.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    result = cpu::sum_squares(t.as<T>(), t.numel());
  });
  return result;
}

void CpuBackend::scale(const Tensor& t, double factor) {
  require_same_float_type({&t});
  dispatch(t.dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    cpu::scale(t.as<T>(), t.numel(), factor);
  });
}

void CpuBackend::adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                              const Tensor& v, const AdamWStep& hp, const Tensor& working_copy) {
  require_same_float_type({&param, &grad, &m, &v});
  const int64_t n = param.numel();
  MEAP_CHECK(grad.numel() == n && m.numel() == n && v.numel() == n, "adamw shapes");
  MEAP_CHECK(working_copy.empty() || (working_copy.dtype == DType::bf16 &&
                                      working_copy.numel() == n && param.dtype == DType::f32),
             "adamw working copy must be bf16 of the f32 master's size");
  if (fast(param.dtype))
    cpu::fast::adamw_update(param.as<float>(), grad.as<float>(), m.as<float>(), v.as<float>(),
                            n, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.step);
  else
    dispatch(param.dtype, [&](auto* p) {
      using T = std::remove_pointer_t<decltype(p)>;
      cpu::adamw_update(param.as<T>(), grad.as<T>(), m.as<T>(), v.as<T>(), n, hp.lr,
                        hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.step);
    });
  if (!working_copy.empty()) cast(working_copy, param);
}

}  // namespace meap
