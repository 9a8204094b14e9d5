// A test-only Backend that computes in bf16 on the CPU: Backend checks every op against the
// bf16 contract of include/meap/backend/backend.hpp; each op widens its bf16 inputs to f32,
// runs the CPU backend's f32 kernel, and rounds its bf16 outputs back (f32 outputs -- weight
// gradients, rstd, lse, losses -- are written directly). So a bf16 Llama, its master copy and
// the trainer-style update run without a GPU, with the rounding a bf16 device has between
// ops. Host memory; supports(bf16). Slow, allocating: tests only.
#pragma once

#include <memory>
#include <vector>

#include "meap/backend/backend.hpp"

namespace meap::testing {

class Bf16EmulationBackend final : public Backend {
 public:
  Bf16EmulationBackend() : cpu_(make_backend(meap::DeviceChoice::cpu)) {}

  Device device() const override { return Device::cpu; }
  std::string name() const override { return "bf16-emulation"; }
  bool supports(DType dt) const override { return dt == F || dt == H; }

  void* allocate(size_t bytes) override { return cpu_->allocate(bytes); }
  void deallocate(void* p) override { cpu_->deallocate(p); }
  void copy_from_host(const Tensor& dst, const void* host) override {
    cpu_->copy_from_host(dst, host);
  }
  void copy_to_host(void* host, const Tensor& src) override { cpu_->copy_to_host(host, src); }
  void fill_zero(const Tensor& t) override { cpu_->fill_zero(t); }
  void synchronize() override {}

 protected:
  void do_cast(const Tensor& dst, const Tensor& src) override { cpu_->cast(dst, src); }

  void do_embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& table) override {
    Wide o = scratch(out), tb = widen(table);
    cpu_->embedding_forward(o.t, tokens, tb.t);
    narrow(out, o);
  }
  void do_embedding_backward(const Tensor& dtable, const Tensor& dout,
                             const Tensor& tokens) override {
    cpu_->embedding_backward(dtable, widen(dout).t, tokens);
  }
  void do_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                          const Tensor& weight, double eps) override {
    Wide o = scratch(out);
    cpu_->rmsnorm_forward(o.t, rstd, widen(x).t, widen(weight).t, eps);
    narrow(out, o);
  }
  void do_rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                           const Tensor& x, const Tensor& weight, const Tensor& rstd) override {
    Wide d = widen(dx);  // dx +=: start from its current value
    cpu_->rmsnorm_backward(d.t, dweight, widen(dout).t, widen(x).t, widen(weight).t, rstd);
    narrow(dx, d);
  }
  void do_matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) override {
    Wide o = scratch(out);
    cpu_->matmul_forward(o.t, widen(x).t, widen(w).t);
    narrow(out, o);
  }
  void do_matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                          const Tensor& w) override {
    Wide d = dx.empty() ? Wide{} : scratch(dx);
    cpu_->matmul_backward(d.t, dw, widen(dout).t, widen(x).t, widen(w).t);
    if (!dx.empty()) narrow(dx, d);
  }
  void do_rope(const Tensor& x, int n_rot, const Tensor& cos, const Tensor& sin,
               const Tensor& positions, bool inverse) override {
    Wide v = widen(x);
    if (inverse)
      cpu_->rope_backward(v.t, n_rot, cos, sin, positions);
    else
      cpu_->rope_forward(v.t, n_rot, cos, sin, positions);
    narrow(x, v);
  }
  void do_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int hq,
                            int hkv, const Tensor& segments) override {
    Wide o = scratch(out);
    cpu_->attention_forward(o.t, lse, widen(qkv).t, hq, hkv, segments);
    narrow(out, o);
  }
  void do_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                             const Tensor& out, const Tensor& lse, int hq, int hkv,
                             const Tensor& segments) override {
    Wide d = scratch(dqkv);
    cpu_->attention_backward(d.t, widen(dout).t, widen(qkv).t, widen(out).t, lse, hq, hkv,
                             segments);
    narrow(dqkv, d);
  }
  void do_swiglu_forward(const Tensor& out, const Tensor& gate_up) override {
    Wide o = scratch(out);
    cpu_->swiglu_forward(o.t, widen(gate_up).t);
    narrow(out, o);
  }
  void do_swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                          const Tensor& gate_up) override {
    Wide d = scratch(dgate_up);
    cpu_->swiglu_backward(d.t, widen(dout).t, widen(gate_up).t);
    narrow(dgate_up, d);
  }
  void do_add_forward(const Tensor& out, const Tensor& a, const Tensor& b) override {
    Wide wa = widen(a), wb = widen(b);  // out may alias a: both read before writing
    cpu_->add_forward(wa.t, wa.t, wb.t);
    narrow(out, wa);
  }
  void do_cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                         const Tensor& logits, const Tensor& targets,
                                         const Tensor& weights, double grad_scale) override {
    Wide l = widen(logits);  // the gradient overwrites the widened logits in place
    cpu_->cross_entropy_forward_backward(losses, l.t, l.t, targets, weights, grad_scale);
    narrow(dlogits, l);
  }
  double do_sum_squares(const Tensor& t) override { return cpu_->sum_squares(t); }
  void do_scale(const Tensor& t, double factor) override { cpu_->scale(t, factor); }
  void do_adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                       const AdamWStep& hp, const Tensor& working_copy) override {
    cpu_->adamw_update(param, grad, m, v, hp, working_copy);
  }

 private:
  static constexpr DType H = DType::bf16, F = DType::f32;

  // An f32 tensor of another tensor's shape over owned host memory.
  struct Wide {
    std::vector<float> buf;
    Tensor t;
  };
  static Wide scratch(const Tensor& like) {
    Wide w;
    w.buf.resize(like.numel());
    w.t = like;
    w.t.dtype = F;
    w.t.device = Device::cpu;
    w.t.data = w.buf.data();
    return w;
  }
  Wide widen(const Tensor& t) {
    Wide w = scratch(t);
    cpu_->cast(w.t, t);
    return w;
  }
  void narrow(const Tensor& dst, const Wide& w) { cpu_->cast(dst, w.t); }

  std::unique_ptr<Backend> cpu_;
};

}  // namespace meap::testing
