// Llama: a LLaMA-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) with an
// explicit forward and backward over a Backend. Parameters and gradients each live in one
// flat buffer; named tensors are views into it. Activations are allocated once for the
// largest batch (B, T) the model is built for. In bf16 an fp32 master copy of the flat
// parameters sits beside the bf16 working copy (precisions: include/meap/backend.hpp).
#pragma once

#include <functional>
#include <span>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meap/backend/arena.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/enum_names.hpp"
#include "meap/model/model_config.hpp"

namespace meap {

struct NamedParameter {
  std::string name;     // e.g. "layers.3.attention.wqkv.weight"
  Tensor value;         // view into the flat parameter buffer (the working copy forward reads)
  Tensor grad;          // view into the flat gradient buffer, same offset
  Tensor master;        // view into the flat master buffer, same offset (== value unless bf16)
  int64_t offset = 0;   // element offset inside the flat buffers
  bool weight_decay = true;  // false for norm gains
};

// Activation recomputation (train.recompute): which per-layer activations the forward
// does not keep for the backward. Dropped ones live in one shared buffer that every layer's
// forward overwrites; the backward recomputes them layer by layer with the same kernels on
// the same saved inputs, so losses and gradients are bit-identical to Recompute::none.
//  - mlp: ln2, rstd2, gate_up, act (rmsnorm + w_gate_up GEMM + SwiGLU redone from the
//    saved block input x_mid) -- the largest part: C + 3F + 1 of a layer's
//    5C + (Hq + 2Hkv) D + 3F + Hq + 2 values per token.
//  - attention: att and lse (attention forward redone from the saved, rotated qkv); the
//    attention backward needs both, and wo's weight gradient needs att.
//  - all: both.
enum class Recompute { none, mlp, attention, all };
// "none" | "mlp" | "attention" | "all" (enum_names.hpp).
std::span<const std::string_view> enum_names(Recompute);

// Byte counts a model of this shape needs, for `meap inspect` and start-up checks.
struct LlamaMemoryPlan {
  int64_t n_parameters = 0;      // real parameter count (no padding)
  int64_t n_flat = 0;            // flat buffer length (parameters plus alignment padding)
  size_t parameter_bytes = 0;    // the working copy, in the model's dtype
  size_t master_bytes = 0;       // the fp32 master copy: bf16 only (else the parameters are it)
  size_t gradient_bytes = 0;     // in grad_dtype (f32 for bf16)
  size_t activation_bytes = 0;   // everything kept for the backward plus gradient scratch
};

// Packed documents in the rows of a batch (SFT packing, data.document_mask): host arrays of
// B*T entries, each optional. segment_ids never decrease along a row; attention stays within
// a segment. positions are the RoPE positions, in [0, max_seq_len) (restarting at 0 in each
// document); null: 0 .. T-1 in every row.
struct PackedDocuments {
  const int32_t* segment_ids = nullptr;
  const int32_t* positions = nullptr;
};

class Llama {
 public:
  // batch and seq_len are the largest micro-batch the model will run; dtype is the
  // parameter and compute dtype: f32, f64 (gradient checks on the CPU) or bf16 (CUDA only:
  // a CPU backend is refused, its kernels are f32/f64).
  // flat_multiple pads the flat parameter, master and gradient buffers with zeros up to a
  // multiple of it, so that ZeRO-1 can cut them into world_size equal shards (trainer:
  // world_size x 64 elements, keeping every shard 256-byte aligned); the named views do not
  // change.
  Llama(const ModelConfig& config, Backend& backend, int64_t batch, int64_t seq_len,
        DType dtype = DType::f32, int64_t flat_multiple = 1,
        Recompute recompute = Recompute::none);
  ~Llama();
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;

  // Every parameter's name and shape, in flat-buffer order, without building a model (the
  // HF export and import map these names).
  static std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(
      const ModelConfig& config);

  static LlamaMemoryPlan memory_plan(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                     DType dtype = DType::f32,
                                     Recompute recompute = Recompute::none);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  DType dtype() const { return dtype_; }
  // Weight gradients, the master copy and (in the trainer) the AdamW moments: f32 for a
  // bf16 model, else the model's dtype.
  DType grad_dtype() const { return grad_dtype_; }
  Recompute recompute() const { return recompute_; }
  int64_t max_batch() const { return max_batch_; }
  int64_t max_seq_len() const { return max_seq_; }
  int64_t num_parameters() const { return n_parameters_; }

  // (n_flat rounded up to flat_multiple); the padding past the last parameter, like the
  // alignment gaps between parameters, stays zero.
  Tensor flat_parameters() const { return params_; }
  Tensor flat_gradients() const { return grads_; }
  // The master weights the optimizer updates and checkpoints hold: the same flat layout as
  // flat_parameters(), in grad_dtype(). For f32 and f64 it IS flat_parameters() (same
  // memory); for bf16 a separate fp32 buffer.
  Tensor flat_master() const { return master_; }
  const std::vector<NamedParameter>& parameters() const { return named_; }
  const NamedParameter& parameter(const std::string& name) const;

  // Normal(0, init_std) weights, residual projections (wo, w_down) scaled by
  // 1/sqrt(2 n_layers), norm gains 1, written to the master. A pure function of seed.
  void init_weights(uint64_t seed);
  // Working copy = master rounded to the model's dtype (bf16); a no-op when they are the
  // same buffer. Call after writing the master other than through AdamW's working_copy
  // (init_weights and load_llama_weights do it themselves).
  void sync_working_copy();
  void zero_grad();

  // Host arrays of B*T entries each. Returns the weighted mean loss
  // sum(w_i loss_i) / sum(w_i) and leaves the logits' gradient ready for backward(), scaled
  // by grad_scale (0 = 1 / sum(w_i), the gradient of the returned mean).
  double forward(const int32_t* inputs, const int32_t* targets, const float* weights, int64_t B,
                 int64_t T, double grad_scale = 0, PackedDocuments documents = {});
  // Adds d(loss)/d(parameters) of the last forward() into the flat gradients. ready, when
  // given, is called with each flat element range [begin, end) as soon as the backward
  // has finished writing its gradients -- the head and final norm (with the padding at the
  // end), then layer L-1 ... layer 0, then the embedding (which a tied head shares) -- so
  // data parallelism can reduce them while the backward goes on. The ranges tile the flat
  // buffer exactly; on a device they are ready in the backend's stream order.
  using GradientsReady = std::function<void(int64_t begin, int64_t end)>;
  void backward(const GradientsReady& ready = {});

  // Forward without a loss: logits() then holds (B, T, V) for inspection or sampling, in
  // the model's dtype (bf16 for a bf16 model: read it with backend().cast or bf16_to_f32).
  void forward_logits(const int32_t* inputs, int64_t B, int64_t T,
                      PackedDocuments documents = {});
  Tensor logits() const;
  // Layer l's q, k (RoPE applied) and v of the last forward or forward_logits:
  // (B, T, Hq + 2 Hkv, D), q heads first, in the model's dtype. The evaluation's attention
  // analysis (src/eval/attention_analysis.cpp) computes attention probabilities from it.
  Tensor layer_qkv(int64_t layer) const;

 private:
  struct LayerWeights {
    Tensor attn_norm, wqkv, wo, mlp_norm, w_gate_up, w_down;
  };
  struct LayerActivations {
    Tensor ln1, rstd1, qkv, att, lse, x_mid, ln2, rstd2, gate_up, act;
  };
  // Sized for (max_batch, max_seq) as 1-D buffers; each use views a (B, T) prefix.
  // Model dtype, except rstd*, lse, losses and the rope tables (f32 for bf16). Under
  // recomputation the dropped tensors of every layer view one shared buffer.
  struct Activations {
    Tensor tokens, targets, weights;  // (N) i32, i32, f32
    Tensor segments, positions;       // (N) i32 each: the last forward's PackedDocuments
    Tensor rope_cos, rope_sin;        // (max_seq_len, D/2)
    std::vector<Tensor> residual;     // L+1 of (N, C): each layer's input, then the last
    std::vector<LayerActivations> layers;
    Tensor lnf, rstdf, logits, losses;  // logits (N, V) are overwritten by their gradient
    Tensor d_resid, d_norm, d_att, d_qkv, d_act, d_gate_up;  // gradient scratch
  };
  struct ParameterSpec {
    std::string name;
    std::vector<int64_t> shape;
    bool weight_decay;
    int64_t offset;
  };

  static std::vector<ParameterSpec> parameter_specs(const ModelConfig& config, int64_t* n_flat);
  template <class Alloc>
  static void layout_activations(Activations& a, Alloc& alloc, const ModelConfig& config,
                                 int64_t batch, int64_t seq_len, DType dtype,
                                 Recompute recompute);
  void run_forward(int64_t B, int64_t T);
  // Layer l's MLP input side, x_mid -> ln2, rstd2, gate_up, act: run by the forward and
  // again by the backward under Recompute::mlp, so both compute exactly the same values.
  void mlp_front(int64_t l, int64_t B, int64_t T);
  void upload_tokens(const int32_t* inputs, int64_t n);
  // Checks and uploads `documents` for a (B, T) batch; the forward and backward then read
  // segments() and positions().
  void upload_documents(const PackedDocuments& documents, int64_t B, int64_t T);
  // The last forward's segment ids and positions as (B, T) views; empty when it had none.
  Tensor segments() const;
  Tensor positions() const;
  // The rotary tables the last forward's positions index: (T, D/2), or every row when
  // the positions are explicit.
  std::pair<Tensor, Tensor> rope_tables() const;

  ModelConfig config_;
  Backend& backend_;
  DType dtype_, grad_dtype_;
  Recompute recompute_;
  int64_t max_batch_, max_seq_;
  int64_t n_parameters_ = 0;

  Arena param_arena_, master_arena_, grad_arena_, act_arena_;
  Tensor params_, master_, grads_;
  std::vector<NamedParameter> named_;
  Tensor embedding_, final_norm_, lm_head_;
  Tensor d_embedding_, d_final_norm_, d_lm_head_;
  std::vector<LayerWeights> w_, dw_;
  Activations act_;
  std::vector<double> host_losses_;     // (N) per-token losses on the host
  std::vector<float> host_losses_f32_;  // (N) staging for f32 losses (f32 and bf16 models)

  int64_t last_B_ = 0, last_T_ = 0;
  bool has_segments_ = false, has_positions_ = false;  // of the last forward
  // Flat offsets where layer l's parameters begin (layer_begin_[L] = the final norm's).
  std::vector<int64_t> layer_begin_;
  bool has_loss_grad_ = false;
};

}  // namespace meap
