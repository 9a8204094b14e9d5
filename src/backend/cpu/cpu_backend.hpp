// CpuBackend: the CPU backend (f32 for training, f64 for gradient checks). Its reference
// kernels are the oracle every other backend is tested against; its fast f32 kernels are
// what training runs. OpenMP-parallel and deterministic.
#pragma once

#include "meap/backend/backend.hpp"

namespace meap {

// Which kernels a CpuBackend runs in f32. reference: the plain loops of cpu_kernels.hpp,
// the oracle of every test. fast: blocked BLAS attention and vectorised elementwise passes
// (fast_kernels.hpp), tested against the reference; what make_backend(DeviceChoice::cpu)
// gives. f64 always runs the reference.
enum class CpuKernels { reference, fast };

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(CpuKernels kernels = CpuKernels::reference) : kernels_(kernels) {}
  CpuKernels kernels() const { return kernels_; }

  Device device() const override { return Device::cpu; }
  std::string name() const override { return "cpu"; }

  bool supports(DType dt) const override { return dt == DType::f32 || dt == DType::f64; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr) override;
  void copy_from_host(const Tensor& dst, const void* host) override;
  void copy_to_host(void* host, const Tensor& src) override;
  void fill_zero(const Tensor& t) override;
  void synchronize() override {}

 protected:
  void do_cast(const Tensor& dst, const Tensor& src) override;
  void do_embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& table) override;
  void do_embedding_backward(const Tensor& dtable, const Tensor& dout,
                             const Tensor& tokens) override;
  void do_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                          const Tensor& weight, double eps) override;
  void do_rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                           const Tensor& x, const Tensor& weight, const Tensor& rstd) override;
  void do_matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) override;
  void do_matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                          const Tensor& w) override;
  void do_rope(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
               const Tensor& positions, bool inverse) override;
  void do_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int n_heads,
                            int n_kv_heads, const Tensor& segments) override;
  void do_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                             const Tensor& out, const Tensor& lse, int n_heads, int n_kv_heads,
                             const Tensor& segments) override;
  void do_swiglu_forward(const Tensor& out, const Tensor& gate_up) override;
  void do_swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                          const Tensor& gate_up) override;
  void do_add_forward(const Tensor& out, const Tensor& a, const Tensor& b) override;
  void do_cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                         const Tensor& logits, const Tensor& targets,
                                         const Tensor& weights, double grad_scale) override;
  double do_sum_squares(const Tensor& t) override;
  void do_scale(const Tensor& t, double factor) override;
  void do_adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                       const AdamWStep& hp, const Tensor& working_copy) override;
 private:
  // True when the fast kernel of an op on tensors of this dtype should run.
  bool fast(DType dt) const { return kernels_ == CpuKernels::fast && dt == DType::f32; }

  CpuKernels kernels_;
};

}  // namespace meap
