// Llama: a LLaMA-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) with an
// explicit forward and backward over a Backend. Parameters and gradients each live in one
// flat buffer; named tensors are views into it. Activations are allocated once for the
// largest batch (B, T) the model is built for.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meap/arena.hpp"
#include "meap/backend.hpp"
#include "meap/model_config.hpp"

namespace meap {

struct NamedParameter {
  std::string name;     // e.g. "layers.3.attention.wqkv.weight"
  Tensor value;         // view into the flat parameter buffer
  Tensor grad;          // view into the flat gradient buffer, same offset
  int64_t offset = 0;   // element offset inside the flat buffers
  bool weight_decay = true;  // false for norm gains
};

// Byte counts a model of this shape needs, for `meap inspect` and start-up checks.
struct LlamaMemoryPlan {
  int64_t n_parameters = 0;      // real parameter count (no padding)
  int64_t n_flat = 0;            // flat buffer length (parameters plus alignment padding)
  size_t parameter_bytes = 0;
  size_t gradient_bytes = 0;
  size_t activation_bytes = 0;   // everything kept for the backward plus gradient scratch
};

class Llama {
 public:
  // batch and seq_len are the largest micro-batch the model will run; dtype is the
  // parameter and compute dtype (f32; f64 for gradient checks on the CPU).
  // flat_multiple pads the flat parameter and gradient buffers with zeros up to a multiple
  // of it, so that ZeRO-1 can cut them into world_size equal shards (trainer: world_size
  // x 64 elements, keeping every shard 256-byte aligned); the named views do not change.
  Llama(const ModelConfig& config, Backend& backend, int64_t batch, int64_t seq_len,
        DType dtype = DType::f32, int64_t flat_multiple = 1);
  ~Llama();
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;

  static LlamaMemoryPlan memory_plan(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                     DType dtype = DType::f32);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  DType dtype() const { return dtype_; }
  int64_t max_batch() const { return max_batch_; }
  int64_t max_seq_len() const { return max_seq_; }
  int64_t num_parameters() const { return n_parameters_; }

  // (n_flat rounded up to flat_multiple); the padding past the last parameter, like the
  // alignment gaps between parameters, stays zero.
  Tensor flat_parameters() const { return params_; }
  Tensor flat_gradients() const { return grads_; }
  const std::vector<NamedParameter>& parameters() const { return named_; }
  const NamedParameter& parameter(const std::string& name) const;

  // Normal(0, init_std) weights, residual projections (wo, w_down) scaled by
  // 1/sqrt(2 n_layers), norm gains 1. A pure function of seed.
  void init_weights(uint64_t seed);
  void zero_grad();

  // Host arrays of B*T entries each. Returns the weighted mean loss
  // sum(w_i loss_i) / sum(w_i) and leaves the logits' gradient ready for backward(), scaled
  // by grad_scale (0 = 1 / sum(w_i), the gradient of the returned mean).
  double forward(const int32_t* inputs, const int32_t* targets, const float* weights, int64_t B,
                 int64_t T, double grad_scale = 0);
  // Adds d(loss)/d(parameters) of the last forward() into the flat gradients.
  void backward();

  // Forward without a loss: logits() then holds (B, T, V) for inspection or sampling.
  void forward_logits(const int32_t* inputs, int64_t B, int64_t T);
  Tensor logits() const;

 private:
  struct LayerWeights {
    Tensor attn_norm, wqkv, wo, mlp_norm, w_gate_up, w_down;
  };
  struct LayerActivations {
    Tensor ln1, rstd1, qkv, att, lse, x_mid, ln2, rstd2, gate_up, act;
  };
  // Sized for (max_batch, max_seq) as 1-D buffers; each use views a (B, T) prefix.
  struct Activations {
    Tensor tokens, targets, weights;  // (N) i32, i32, f32
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
                                 int64_t batch, int64_t seq_len, DType dtype);
  void run_forward(int64_t B, int64_t T);
  void upload_tokens(const int32_t* inputs, int64_t n);

  ModelConfig config_;
  Backend& backend_;
  DType dtype_;
  int64_t max_batch_, max_seq_;
  int64_t n_parameters_ = 0;

  Arena param_arena_, grad_arena_, act_arena_;
  Tensor params_, grads_;
  std::vector<NamedParameter> named_;
  Tensor embedding_, final_norm_, lm_head_;
  Tensor d_embedding_, d_final_norm_, d_lm_head_;
  std::vector<LayerWeights> w_, dw_;
  Activations act_;
  std::vector<double> host_losses_;     // (N) per-token losses on the host
  std::vector<float> host_losses_f32_;  // (N) staging for an f32 model's losses

  int64_t last_B_ = 0, last_T_ = 0;
  bool has_loss_grad_ = false;
};

}  // namespace meap
