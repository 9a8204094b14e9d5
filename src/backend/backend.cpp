// The op contract of meap::Backend, checked once for every backend: each public op checks
// devices, dtypes (the Precisions block of backend.hpp) and shapes, then calls the backend's
// compute-only do_<op>. A violation is a meap::Error naming the backend, the op and the tensor.
#include "meap/backend/backend.hpp"

namespace meap {

namespace {

// Weight gradients, per-row statistics and rotary tables under storage dtype s: f32 for bf16
// storage, s itself otherwise.
DType wide(DType s) { return s == DType::bf16 ? DType::f32 : s; }

class OpCheck {
 public:
  OpCheck(const Backend& backend, const char* op) : backend_(backend), op_(op) {}

  template <class... Args>
  [[noreturn]] void reject(const Args&... args) const {
    fail(backend_.name(), " ", op_, ": ", args...);
  }
  template <class... Args>
  void require(bool ok, const Args&... args) const {
    if (!ok) reject(args...);
  }

  // `t` is on the backend's device and has dtype `want` (an empty optional tensor passes).
  void dtype(const Tensor& t, DType want, const char* what) const {
    if (t.empty()) return;
    require(t.device == backend_.device(), what, " ", t.shape_string(), " is in ",
            t.device == Device::cpu ? "host" : "GPU", " memory; the ", backend_.name(),
            " backend's ops take ", backend_.device() == Device::cpu ? "host" : "GPU", " tensors");
    require(t.dtype == want, what, " must be ", dtype_name(want), ", got ", dtype_name(t.dtype));
  }

  // The storage dtype S of the op: that of `t`, a floating-point dtype this backend computes
  // in. `optimizer`: f32 or f64 only (a bf16 model's optimizer works on its f32 master).
  DType storage(const Tensor& t, const char* what, bool optimizer = false) const {
    const DType s = t.dtype;
    const bool float_type = s == DType::f32 || s == DType::f64 || s == DType::bf16;
    require(float_type && backend_.supports(s) && !(optimizer && s == DType::bf16), what, " is ",
            dtype_name(s), ", a dtype the ", backend_.name(), " backend's ",
            optimizer ? "optimizer ops do" : "ops do", " not compute in");
    dtype(t, s, what);
    return s;
  }

 private:
  const Backend& backend_;
  const char* op_;
};

}  // namespace

void Backend::cast(const Tensor& dst, const Tensor& src) {
  const OpCheck c(*this, "cast");
  c.dtype(src, src.dtype, "src");
  c.dtype(dst, dst.dtype, "dst");
  c.require(dst.numel() == src.numel(), "cast of ", src.shape_string(), " into ",
            dst.shape_string(), " (the element counts differ)");
  const auto pair = [&](DType a, DType b) {
    return (src.dtype == a && dst.dtype == b) || (src.dtype == b && dst.dtype == a);
  };
  const bool f64_here = supports(DType::f64) || !pair(DType::f32, DType::f64);
  c.require(src.dtype == dst.dtype || pair(DType::f32, DType::bf16) ||
                (pair(DType::f32, DType::f64) && f64_here),
            "cast from ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype),
            " is not supported here (F32 <-> BF16, F32 <-> F64 where the backend computes in F64)");
  do_cast(dst, src);
}

void Backend::embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& table) {
  const OpCheck c(*this, "embedding_forward");
  const DType s = c.storage(table, "table");
  c.dtype(out, s, "out");
  c.dtype(tokens, DType::i32, "tokens");
  const int64_t n = tokens.numel(), c_dim = table.dim(-1);
  c.require(table.ndim == 2 && c_dim > 0 && out.numel() == n * c_dim, "table ",
            table.shape_string(), ", tokens ", tokens.shape_string(), ", out ", out.shape_string(),
            " do not match (table (V, C), out (N, C))");
  do_embedding_forward(out, tokens, table);
}

void Backend::embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& tokens) {
  const OpCheck c(*this, "embedding_backward");
  const DType s = c.storage(dout, "dout");
  c.dtype(dtable, wide(s), "dtable (a weight gradient)");
  c.dtype(tokens, DType::i32, "tokens");
  const int64_t n = tokens.numel(), c_dim = dtable.dim(-1);
  c.require(dtable.ndim == 2 && c_dim > 0 && dout.numel() == n * c_dim, "dtable ",
            dtable.shape_string(), ", tokens ", tokens.shape_string(), ", dout ",
            dout.shape_string(), " do not match");
  do_embedding_backward(dtable, dout, tokens);
}

void Backend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                              const Tensor& weight, double eps) {
  const OpCheck c(*this, "rmsnorm_forward");
  const DType s = c.storage(x, "x");
  c.dtype(out, s, "out");
  c.dtype(weight, s, "weight");
  c.dtype(rstd, wide(s), "rstd");
  const int64_t c_dim = weight.numel(), n = c_dim > 0 ? x.numel() / c_dim : 0;
  c.require(c_dim > 0 && x.numel() == n * c_dim && out.numel() == n * c_dim && rstd.numel() == n,
            "x ", x.shape_string(), ", weight ", weight.shape_string(), ", out ",
            out.shape_string(), ", rstd ", rstd.shape_string(), " do not match");
  do_rmsnorm_forward(out, rstd, x, weight, eps);
}

void Backend::rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                               const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const OpCheck c(*this, "rmsnorm_backward");
  const DType s = c.storage(x, "x");
  for (auto [t, what] : {std::pair{&dx, "dx"}, {&dout, "dout"}, {&weight, "weight"}})
    c.dtype(*t, s, what);
  c.dtype(dweight, wide(s), "dweight (a weight gradient)");
  c.dtype(rstd, wide(s), "rstd");
  const int64_t c_dim = weight.numel(), n = c_dim > 0 ? x.numel() / c_dim : 0;
  c.require(c_dim > 0 && x.numel() == n * c_dim && dx.numel() == n * c_dim &&
                dout.numel() == n * c_dim && rstd.numel() == n && dweight.numel() == c_dim,
            "x ", x.shape_string(), ", weight ", weight.shape_string(), ", dx ", dx.shape_string(),
            ", dout ", dout.shape_string(), ", dweight ", dweight.shape_string(), ", rstd ",
            rstd.shape_string(), " do not match");
  do_rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
}

void Backend::matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) {
  const OpCheck c(*this, "matmul_forward");
  const DType s = c.storage(x, "x");
  c.dtype(w, s, "w");
  c.dtype(out, s, "out");
  const int64_t oc = w.dim(0), ic = w.dim(-1), n = ic > 0 ? x.numel() / ic : 0;
  c.require(w.ndim == 2 && ic > 0 && x.numel() == n * ic && out.numel() == n * oc, "x ",
            x.shape_string(), " w ", w.shape_string(), " out ", out.shape_string(),
            " (expected x (N, IC), w (OC, IC), out (N, OC))");
  do_matmul_forward(out, x, w);
}

void Backend::matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                              const Tensor& x, const Tensor& w) {
  const OpCheck c(*this, "matmul_backward");
  const DType s = c.storage(x, "x");
  c.dtype(w, s, "w");
  c.dtype(dout, s, "dout");
  c.dtype(dx, s, "dx");
  c.dtype(dw, wide(s), "dw (a weight gradient)");
  const int64_t oc = w.dim(0), ic = w.dim(-1), n = ic > 0 ? x.numel() / ic : 0;
  c.require(w.ndim == 2 && ic > 0 && x.numel() == n * ic && dout.numel() == n * oc &&
                dw.numel() == oc * ic && (dx.empty() || dx.numel() == n * ic),
            "x ", x.shape_string(), " w ", w.shape_string(), " dout ", dout.shape_string(), " dw ",
            dw.shape_string(), " dx ", dx.shape_string(), " do not match");
  do_matmul_backward(dx, dw, dout, x, w);
}

namespace {

// An optional per-token i32 tensor of x's (B, T) (RoPE positions, attention segments).
void check_per_token(const OpCheck& c, const Tensor& ids, const Tensor& x, const char* what) {
  if (ids.empty()) return;
  c.dtype(ids, DType::i32, what);
  c.require(x.ndim == 4 && ids.numel() == x.dim(0) * x.dim(1), what, " ", ids.shape_string(),
            " is not (B, T) of ", x.shape_string());
}

void check_rope(const OpCheck& c, const Tensor& x, int n_rot_heads, const Tensor& cos,
                const Tensor& sin, const Tensor& positions) {
  const DType s = c.storage(x, "x");
  c.dtype(cos, wide(s), "cos");
  c.dtype(sin, wide(s), "sin");
  c.require(x.ndim == 4 && n_rot_heads >= 0 && n_rot_heads <= x.dim(2),
            "expects x (B, T, H, D) and 0 <= n_rot_heads <= H, got x ", x.shape_string(), " and ",
            n_rot_heads, " heads");
  check_per_token(c, positions, x, "positions");
  // Without positions token t reads row t; with them, rows up to the largest position
  // (the caller's contract: each in [0, P), P = the table's rows).
  const int64_t t = x.dim(1), d = x.dim(3);
  c.require(d % 2 == 0 && cos.numel() >= t * d / 2 && sin.numel() >= t * d / 2, "head dim ", d,
            " must be even and the tables (T, D/2) hold ", cos.numel(), " and ", sin.numel(),
            " entries for T = ", t);
}

void check_qkv(const OpCheck& c, const Tensor& qkv, const Tensor& out, const Tensor& lse,
               int n_heads, int n_kv_heads) {
  c.require(qkv.ndim == 4 && n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0 &&
                qkv.dim(2) == n_heads + 2 * n_kv_heads,
            "qkv ", qkv.shape_string(), " is not (B, T, ", n_heads, " + 2 x ", n_kv_heads,
            ", D) with the query heads a multiple of the kv heads");
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  c.require(out.numel() == b * t * n_heads * d && lse.numel() == b * n_heads * t, "out ",
            out.shape_string(), " or lse ", lse.shape_string(), " does not match qkv ",
            qkv.shape_string());
}

}  // namespace

void Backend::rope_forward(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                           const Tensor& positions) {
  check_rope(OpCheck(*this, "rope_forward"), x, n_rot_heads, cos, sin, positions);
  do_rope(x, n_rot_heads, cos, sin, positions, false);
}

void Backend::rope_backward(const Tensor& dx, int n_rot_heads, const Tensor& cos,
                            const Tensor& sin, const Tensor& positions) {
  check_rope(OpCheck(*this, "rope_backward"), dx, n_rot_heads, cos, sin, positions);
  do_rope(dx, n_rot_heads, cos, sin, positions, true);
}

void Backend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                int n_heads, int n_kv_heads, const Tensor& segments) {
  const OpCheck c(*this, "attention_forward");
  const DType s = c.storage(qkv, "qkv");
  c.dtype(out, s, "out");
  c.dtype(lse, wide(s), "lse");
  check_qkv(c, qkv, out, lse, n_heads, n_kv_heads);
  check_per_token(c, segments, qkv, "segments");
  do_attention_forward(out, lse, qkv, n_heads, n_kv_heads, segments);
}

void Backend::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                 const Tensor& out, const Tensor& lse, int n_heads,
                                 int n_kv_heads, const Tensor& segments) {
  const OpCheck c(*this, "attention_backward");
  const DType s = c.storage(qkv, "qkv");
  for (auto [t, what] : {std::pair{&dqkv, "dqkv"}, {&dout, "dout"}, {&out, "out"}})
    c.dtype(*t, s, what);
  c.dtype(lse, wide(s), "lse");
  check_qkv(c, qkv, out, lse, n_heads, n_kv_heads);
  c.require(dqkv.numel() == qkv.numel() && dout.numel() == out.numel(), "dqkv ",
            dqkv.shape_string(), " or dout ", dout.shape_string(), " does not match qkv ",
            qkv.shape_string(), " and out ", out.shape_string());
  check_per_token(c, segments, qkv, "segments");
  do_attention_backward(dqkv, dout, qkv, out, lse, n_heads, n_kv_heads, segments);
}

void Backend::swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  const OpCheck c(*this, "swiglu_forward");
  const DType s = c.storage(gate_up, "gate_up");
  c.dtype(out, s, "out");
  const int64_t f = out.dim(-1), n = f > 0 ? out.numel() / f : 0;
  c.require(f > 0 && gate_up.numel() == 2 * n * f, "out ", out.shape_string(), " and gate_up ",
            gate_up.shape_string(), " are not (N, F) and (N, 2F)");
  do_swiglu_forward(out, gate_up);
}

void Backend::swiglu_backward(const Tensor& dgate_up, const Tensor& dout, const Tensor& gate_up) {
  const OpCheck c(*this, "swiglu_backward");
  const DType s = c.storage(gate_up, "gate_up");
  c.dtype(dout, s, "dout");
  c.dtype(dgate_up, s, "dgate_up");
  const int64_t f = dout.dim(-1), n = f > 0 ? dout.numel() / f : 0;
  c.require(f > 0 && gate_up.numel() == 2 * n * f && dgate_up.numel() == 2 * n * f, "dout ",
            dout.shape_string(), ", gate_up ", gate_up.shape_string(), ", dgate_up ",
            dgate_up.shape_string(), " are not (N, F), (N, 2F), (N, 2F)");
  do_swiglu_backward(dgate_up, dout, gate_up);
}

void Backend::add_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  const OpCheck c(*this, "add_forward");
  const DType s = c.storage(a, "a");
  c.dtype(b, s, "b");
  c.dtype(out, s, "out");
  c.require(out.numel() == a.numel() && a.numel() == b.numel(), "out ", out.shape_string(), ", a ",
            a.shape_string(), ", b ", b.shape_string(), " differ in size");
  do_add_forward(out, a, b);
}

void Backend::cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                             const Tensor& logits, const Tensor& targets,
                                             const Tensor& weights, double grad_scale) {
  const OpCheck c(*this, "cross_entropy_forward_backward");
  const DType s = c.storage(logits, "logits");
  c.dtype(dlogits, s, "dlogits");
  c.dtype(losses, wide(s), "losses");
  c.dtype(targets, DType::i32, "targets");
  c.dtype(weights, DType::f32, "weights");
  const int64_t v = logits.dim(-1), n = v > 0 ? logits.numel() / v : 0;
  c.require(v > 0 && targets.numel() == n && weights.numel() == n && losses.numel() == n &&
                dlogits.numel() == n * v,
            "logits ", logits.shape_string(), ", dlogits ", dlogits.shape_string(), ", targets ",
            targets.shape_string(), ", weights ", weights.shape_string(), ", losses ",
            losses.shape_string(), " do not match");
  do_cross_entropy_forward_backward(losses, dlogits, logits, targets, weights, grad_scale);
}

double Backend::sum_squares(const Tensor& t) {
  OpCheck(*this, "sum_squares").storage(t, "t", true);
  return do_sum_squares(t);
}

void Backend::scale(const Tensor& t, double factor) {
  OpCheck(*this, "scale").storage(t, "t", true);
  do_scale(t, factor);
}

void Backend::adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                           const Tensor& v, const AdamWStep& hp, const Tensor& working_copy) {
  const OpCheck c(*this, "adamw_update");
  const DType s = c.storage(param, "the master weights", true);
  for (auto [t, what] : {std::pair{&grad, "the gradients"}, {&m, "m"}, {&v, "v"}})
    c.dtype(*t, s, what);
  const int64_t n = param.numel();
  c.require(grad.numel() == n && m.numel() == n && v.numel() == n, "param ", param.shape_string(),
            ", grad ", grad.shape_string(), ", m ", m.shape_string(), ", v ", v.shape_string(),
            " differ in size");
  c.dtype(working_copy, DType::bf16, "the working copy");
  c.require(working_copy.empty() || (working_copy.numel() == n && s == DType::f32),
            "the working copy ", working_copy.shape_string(),
            " must be bf16 of the F32 master's size ", param.shape_string());
  do_adamw_update(param, grad, m, v, hp, working_copy);
}

}  // namespace meap
