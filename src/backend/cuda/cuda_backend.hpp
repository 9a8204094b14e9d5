// CudaBackend: meap::Backend on one NVIDIA GPU. Hand-written kernels (kernels/*.cu) and
// cuBLASLt GEMMs, all on one stream; memory from cudaMalloc. Precisions as in
// meap/backend.hpp: f32 everywhere, or bf16 weights/activations with f32 weight gradients,
// statistics and rotary tables (f64 is the CPU's only). Backend checks every op; every CUDA
// call and launch is checked. The op tests also compile it for the host emulator
// (MEAP_CUDA_EMULATION, tests/emulated_cuda.cpp).
#pragma once

#include <memory>

#include "cuda_check.hpp"
#include "meap/backend/backend.hpp"

namespace meap {

namespace cuda {
inline namespace MEAP_CUDA_ABI {
class CublasLtMatmul;
struct AttentionShape;
}  // namespace MEAP_CUDA_ABI
}  // namespace cuda

inline namespace MEAP_CUDA_ABI {

class CudaBackend final : public Backend {
 public:
  // Uses the current CUDA device (make_backend checks that one is visible).
  CudaBackend();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::cuda; }
  std::string name() const override { return "cuda"; }
  // The one stream every op queues on (gradient buckets make NCCL wait for it).
  void* stream() const override { return stream_; }
  // Published dense peaks for the GPUs meap targets (H100 SXM/PCIe, H200, A100); others
  // from SM count x clock x the architecture's FLOPs per SM per clock, or 0.
  double peak_flops(DType compute) const override;

  bool supports(DType dt) const override { return dt == DType::f32 || dt == DType::bf16; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr) override;
  // Both copies are complete (and the host buffer free to reuse) when they return.
  void copy_from_host(const Tensor& dst, const void* host) override;
  void copy_to_host(void* host, const Tensor& src) override;
  void fill_zero(const Tensor& t) override;
  void synchronize() override;

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
  // Device scratch for reductions and sorting, shared by the ops (one stream runs them in
  // order); grown, never shrunk, when an op needs more than it holds.
  void* scratch(size_t bytes);
  // Where the flash-attention kernels (kernels/attention.hpp) take over from the reference
  // ones: both attention ops ask this one question.
  bool use_flash_attention(DType storage, const cuda::AttentionShape& shape) const;

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::CublasLtMatmul> matmul_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  double* result_device_ = nullptr;  // sum_squares' result
  double* result_host_ = nullptr;    // pinned
};

}  // namespace MEAP_CUDA_ABI
}  // namespace meap
