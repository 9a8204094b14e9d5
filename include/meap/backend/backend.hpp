// Backend: the interface every compute device implements -- memory, copies, and the
// forward and backward of each op the model uses. The model calls only this interface.
// The ops are non-virtual: each checks devices, dtypes and shapes once (src/backend/
// backend.cpp, the rules below) and then calls its backend's compute-only do_<op>.
//
// Conventions for every op:
//  - Tensors are contiguous row-major views; N = B*T flattened tokens.
//  - Activations use the backend's compute dtype (f32/f64 on the CPU), token ids are i32.
//  - Weight gradients ACCUMULATE (+=) so micro-batches add up; the caller zeroes them.
//  - Activation gradients OVERWRITE their output, except rmsnorm_backward's dx (+=,
//    which is how the residual stream's two gradient paths add up).
//
// Precisions (Llama's dtype; train.precision):
//  - f32 / f64: every floating-point tensor of an op has that dtype (f64 on the CPU only,
//    for gradient checks). Loss weights are always f32, token ids i32.
//  - bf16 (where supports(bf16): CUDA): weights and activations are bf16; weight gradients (dtable,
//    dweight, dw) are f32 so micro-batches accumulate without rounding; the per-row
//    statistics (rmsnorm rstd, attention lse, per-token losses) and the rotary tables are
//    f32. The optimizer ops see f32 only: fp32 master weights, f32 gradients and moments,
//    and adamw_update writes the bf16 working copy the forward reads.
#pragma once

#include <memory>
#include <string>

#include "meap/backend/device_choice.hpp"
#include "meap/core/tensor.hpp"

namespace meap {

// Hyper-parameters of one AdamW update.
struct AdamWStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;  // 1-based, for the bias corrections
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  // Whether the ops compute with storage dtype `dt` (the Precisions above): f32 and f64 on
  // the CPU, f32 and bf16 on CUDA. Llama asks this before it builds a model in `dt`.
  virtual bool supports(DType dt) const = 0;

  // ---- memory ----------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual void copy_from_host(const Tensor& dst, const void* host) = 0;  // dst.nbytes()
  virtual void copy_to_host(void* host, const Tensor& src) = 0;          // src.nbytes()
  virtual void fill_zero(const Tensor& t) = 0;
  virtual void synchronize() = 0;
  // The stream (cudaStream_t) this backend queues its work on, for collectives that must
  // wait for it on the device; null for a backend whose ops complete before they return.
  virtual void* stream() const { return nullptr; }
  // Dense peak FLOP/s of this device's matrix math in the compute dtype (bf16 tensor cores,
  // or fp32 without TF32), the denominator of MFU; 0 when unknown (no MFU is reported).
  virtual double peak_flops(DType compute) const {
    (void)compute;
    return 0;
  }
  // dst = src converted element-wise (same numel): f32 <-> bf16 (round to nearest even),
  // f32 <-> f64, or a plain copy when the dtypes agree.
  void cast(const Tensor& dst, const Tensor& src);

  // ---- embedding -------------------------------------------------------------
  // out (N, C) = table[tokens]; tokens (N) i32, table (V, C).
  void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& table);
  // dtable (V, C) += scatter of dout (N, C) by tokens.
  void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& tokens);

  // ---- RMSNorm ---------------------------------------------------------------
  // out (N, C) = x / rms(x) * weight; rstd (N) saves 1/rms for the backward.
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight,
                       double eps);
  // dx (N, C) += ..., dweight (C) += ...
  void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                        const Tensor& x, const Tensor& weight, const Tensor& rstd);

  // ---- linear (no bias) ------------------------------------------------------
  // out (N, OC) = x (N, IC) @ w^T, w (OC, IC) as in torch.nn.Linear.
  void matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w);
  // dx (N, IC) = dout @ w (overwritten; skipped when dx is empty), dw (OC, IC) += dout^T @ x.
  void matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                       const Tensor& w);

  // ---- rotary embedding (Hugging Face convention: rotates pairs (i, i + D/2)) --
  // x (B, T, H, D) rotated in place for heads [0, n_rot_heads); cos, sin (P, D/2) with one
  // row per position. positions (B, T) i32: token (b, t) is rotated by row positions[b][t],
  // each in [0, P) (packed documents restart at 0); empty: row t, and P >= T.
  void rope_forward(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                    const Tensor& positions = {});
  // The inverse rotation, applied in place to the gradient.
  void rope_backward(const Tensor& dx, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                     const Tensor& positions = {});

  // ---- causal grouped-query attention -----------------------------------------
  // qkv (B, T, Hq + 2*Hkv, D): query heads, then key heads, then value heads.
  // Query head h reads kv head h / (Hq / Hkv). out (B, T, Hq, D); lse (B, Hq, T) saves
  // each row's log-sum-exp of the scaled scores for the backward.
  // segments (B, T) i32, document ids of packed rows (SFT packing, data.document_mask):
  // query t reads key s <= t only when segments[b][s] == segments[b][t]. The ids never
  // decrease along a row (documents are contiguous), which lets kernels skip whole tiles.
  // Empty: plain causal attention (one document per row).
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int n_heads,
                         int n_kv_heads, const Tensor& segments = {});
  // dqkv (B, T, Hq + 2*Hkv, D) overwritten; segments as in the forward.
  void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                          const Tensor& out, const Tensor& lse, int n_heads, int n_kv_heads,
                          const Tensor& segments = {});

  // ---- SwiGLU ------------------------------------------------------------------
  // gate_up (N, 2F) = [gate | up] per row; out (N, F) = silu(gate) * up.
  void swiglu_forward(const Tensor& out, const Tensor& gate_up);
  // dgate_up (N, 2F) overwritten.
  void swiglu_backward(const Tensor& dgate_up, const Tensor& dout, const Tensor& gate_up);

  // ---- residual ----------------------------------------------------------------
  // out = a + b, all (N, C); out may alias a.
  void add_forward(const Tensor& out, const Tensor& a, const Tensor& b);

  // ---- fused softmax + cross-entropy -------------------------------------------
  // logits (N, V), targets (N) i32, weights (N) f32 (0 = ignored position).
  // losses (N, compute dtype) = -log softmax(logits)[target] (0 where weight is 0;
  // targets of weight-0 positions are not read).
  // dlogits (N, V) = (softmax - onehot) * weight * grad_scale; may alias logits,
  // so the probabilities are never stored.
  void cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                      const Tensor& logits, const Tensor& targets,
                                      const Tensor& weights, double grad_scale);

  // ---- optimizer -----------------------------------------------------------------
  // Sum of squares of every element, accumulated in double in a fixed order (for the
  // global gradient norm; deterministic).
  double sum_squares(const Tensor& t);
  // t *= factor (gradient clipping).
  void scale(const Tensor& t, double factor);
  // One AdamW update of param from grad, with first/second moments m, v (all the same
  // shape and dtype). lr already includes the schedule; weight decay is decoupled:
  // param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param). step is 1-based.
  // working_copy: empty, or a bf16 tensor of param's numel that receives the updated
  // param rounded to bf16 (mixed precision: param is the fp32 master).
  void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                    const AdamWStep& hp, const Tensor& working_copy);

 protected:
  // Compute only: the public op has checked devices, dtypes and shapes.
  virtual void do_cast(const Tensor& dst, const Tensor& src) = 0;
  virtual void do_embedding_forward(const Tensor& out, const Tensor& tokens,
                                    const Tensor& table) = 0;
  virtual void do_embedding_backward(const Tensor& dtable, const Tensor& dout,
                                     const Tensor& tokens) = 0;
  virtual void do_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                  const Tensor& weight, double eps) = 0;
  virtual void do_rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                                   const Tensor& x, const Tensor& weight, const Tensor& rstd) = 0;
  virtual void do_matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) = 0;
  virtual void do_matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                  const Tensor& x, const Tensor& w) = 0;
  // rope_forward (inverse false) and rope_backward (inverse true).
  virtual void do_rope(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                       const Tensor& positions, bool inverse) = 0;
  virtual void do_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                    int n_heads, int n_kv_heads, const Tensor& segments) = 0;
  virtual void do_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                     const Tensor& out, const Tensor& lse, int n_heads,
                                     int n_kv_heads, const Tensor& segments) = 0;
  virtual void do_swiglu_forward(const Tensor& out, const Tensor& gate_up) = 0;
  virtual void do_swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                                  const Tensor& gate_up) = 0;
  virtual void do_add_forward(const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  virtual void do_cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                                 const Tensor& logits, const Tensor& targets,
                                                 const Tensor& weights, double grad_scale) = 0;
  virtual double do_sum_squares(const Tensor& t) = 0;
  virtual void do_scale(const Tensor& t, double factor) = 0;
  virtual void do_adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                               const Tensor& v, const AdamWStep& hp,
                               const Tensor& working_copy) = 0;
};

// The backend of `device` (auto: cuda when compiled in and a GPU is present, else cpu);
// asking for cuda without one is refused naming train.device.
std::unique_ptr<Backend> make_backend(DeviceChoice device);

// The device make_backend(device) gives.
Device resolve_device(DeviceChoice device);

// True when this binary was built with the CUDA backend and a GPU is visible.
bool cuda_available();

}  // namespace meap
