// A test-only Backend that runs the bf16 contract of include/meap/backend/backend.hpp on the CPU:
// every op checks the dtypes the "Precisions" block prescribes for a bf16 model, widens
// its bf16 inputs to f32, runs the CPU backend's f32 kernel, and rounds its bf16 outputs
// back (f32 outputs -- weight gradients, rstd, lse, losses -- are written directly). So a
// bf16 Llama, its master copy and the trainer-style update can be exercised without a GPU,
// with the rounding a bf16 device has between ops. It reports Device::cuda (its memory is
// host memory) because Llama refuses bf16 on a CPU backend. Slow, allocating: tests only.
#pragma once

#include <memory>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/error.hpp"

namespace meap::testing {

class Bf16EmulationBackend final : public Backend {
 public:
  Bf16EmulationBackend() : cpu_(make_backend(meap::DeviceChoice::cpu)) {}

  Device device() const override { return Device::cuda; }
  std::string name() const override { return "bf16-emulation"; }

  void* allocate(size_t bytes) override { return cpu_->allocate(bytes); }
  void deallocate(void* p) override { cpu_->deallocate(p); }
  void copy_from_host(const Tensor& dst, const void* host) override {
    cpu_->copy_from_host(dst, host);
  }
  void copy_to_host(void* host, const Tensor& src) override { cpu_->copy_to_host(host, src); }
  void fill_zero(const Tensor& t) override { cpu_->fill_zero(t); }
  void synchronize() override {}
  void cast(const Tensor& dst, const Tensor& src) override { cpu_->cast(dst, src); }

  void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& table) override {
    expect({{&out, H}, {&tokens, DType::i32}, {&table, H}}, "embedding_forward");
    Wide o = scratch(out), tb = widen(table);
    cpu_->embedding_forward(o.t, tokens, tb.t);
    narrow(out, o);
  }
  void embedding_backward(const Tensor& dtable, const Tensor& dout,
                          const Tensor& tokens) override {
    expect({{&dtable, F}, {&dout, H}, {&tokens, DType::i32}}, "embedding_backward");
    cpu_->embedding_backward(dtable, widen(dout).t, tokens);
  }
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                       const Tensor& weight, double eps) override {
    expect({{&out, H}, {&rstd, F}, {&x, H}, {&weight, H}}, "rmsnorm_forward");
    Wide o = scratch(out);
    cpu_->rmsnorm_forward(o.t, rstd, widen(x).t, widen(weight).t, eps);
    narrow(out, o);
  }
  void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                        const Tensor& x, const Tensor& weight, const Tensor& rstd) override {
    expect({{&dx, H}, {&dweight, F}, {&dout, H}, {&x, H}, {&weight, H}, {&rstd, F}},
           "rmsnorm_backward");
    Wide d = widen(dx);  // dx +=: start from its current value
    cpu_->rmsnorm_backward(d.t, dweight, widen(dout).t, widen(x).t, widen(weight).t, rstd);
    narrow(dx, d);
  }
  void matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) override {
    expect({{&out, H}, {&x, H}, {&w, H}}, "matmul_forward");
    Wide o = scratch(out);
    cpu_->matmul_forward(o.t, widen(x).t, widen(w).t);
    narrow(out, o);
  }
  void matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                       const Tensor& w) override {
    expect({{&dw, F}, {&dout, H}, {&x, H}, {&w, H}}, "matmul_backward");
    if (!dx.empty()) expect({{&dx, H}}, "matmul_backward dx");
    Wide d = dx.empty() ? Wide{} : scratch(dx);
    cpu_->matmul_backward(d.t, dw, widen(dout).t, widen(x).t, widen(w).t);
    if (!dx.empty()) narrow(dx, d);
  }
  void rope_forward(const Tensor& x, int n_rot, const Tensor& cos, const Tensor& sin) override {
    expect({{&x, H}, {&cos, F}, {&sin, F}}, "rope_forward");
    Wide v = widen(x);
    cpu_->rope_forward(v.t, n_rot, cos, sin);
    narrow(x, v);
  }
  void rope_backward(const Tensor& dx, int n_rot, const Tensor& cos, const Tensor& sin) override {
    expect({{&dx, H}, {&cos, F}, {&sin, F}}, "rope_backward");
    Wide v = widen(dx);
    cpu_->rope_backward(v.t, n_rot, cos, sin);
    narrow(dx, v);
  }
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int hq,
                         int hkv) override {
    expect({{&out, H}, {&lse, F}, {&qkv, H}}, "attention_forward");
    Wide o = scratch(out);
    cpu_->attention_forward(o.t, lse, widen(qkv).t, hq, hkv);
    narrow(out, o);
  }
  void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                          const Tensor& out, const Tensor& lse, int hq, int hkv) override {
    expect({{&dqkv, H}, {&dout, H}, {&qkv, H}, {&out, H}, {&lse, F}}, "attention_backward");
    Wide d = scratch(dqkv);
    cpu_->attention_backward(d.t, widen(dout).t, widen(qkv).t, widen(out).t, lse, hq, hkv);
    narrow(dqkv, d);
  }
  void swiglu_forward(const Tensor& out, const Tensor& gate_up) override {
    expect({{&out, H}, {&gate_up, H}}, "swiglu_forward");
    Wide o = scratch(out);
    cpu_->swiglu_forward(o.t, widen(gate_up).t);
    narrow(out, o);
  }
  void swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                       const Tensor& gate_up) override {
    expect({{&dgate_up, H}, {&dout, H}, {&gate_up, H}}, "swiglu_backward");
    Wide d = scratch(dgate_up);
    cpu_->swiglu_backward(d.t, widen(dout).t, widen(gate_up).t);
    narrow(dgate_up, d);
  }
  void add_forward(const Tensor& out, const Tensor& a, const Tensor& b) override {
    expect({{&out, H}, {&a, H}, {&b, H}}, "add_forward");
    Wide wa = widen(a), wb = widen(b);  // out may alias a: both read before writing
    cpu_->add_forward(wa.t, wa.t, wb.t);
    narrow(out, wa);
  }
  void cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                      const Tensor& logits, const Tensor& targets,
                                      const Tensor& weights, double grad_scale) override {
    expect({{&losses, F}, {&dlogits, H}, {&logits, H}, {&targets, DType::i32}, {&weights, F}},
           "cross_entropy_forward_backward");
    Wide l = widen(logits);  // the gradient overwrites the widened logits in place
    cpu_->cross_entropy_forward_backward(losses, l.t, l.t, targets, weights, grad_scale);
    narrow(dlogits, l);
  }
  double sum_squares(const Tensor& t) override {
    expect({{&t, F}}, "sum_squares");
    return cpu_->sum_squares(t);
  }
  void scale(const Tensor& t, double factor) override {
    expect({{&t, F}}, "scale");
    cpu_->scale(t, factor);
  }
  void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                    const AdamWStep& hp, const Tensor& working_copy) override {
    expect({{&param, F}, {&grad, F}, {&m, F}, {&v, F}}, "adamw_update");
    if (!working_copy.empty()) expect({{&working_copy, H}}, "adamw_update working_copy");
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

  static void expect(std::initializer_list<std::pair<const Tensor*, DType>> want,
                     const char* op) {
    int i = 0;
    for (const auto& [t, dt] : want) {
      MEAP_CHECK(t->dtype == dt, op, ": argument ", i, " is ", dtype_name(t->dtype),
                 ", the bf16 contract says ", dtype_name(dt));
      ++i;
    }
  }

  std::unique_ptr<Backend> cpu_;
};

}  // namespace meap::testing
