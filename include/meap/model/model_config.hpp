// ModelConfig: the shape of a LLaMA-style decoder, and the checks that refuse
// impossible shapes with a message naming the offending config key.
#pragma once

#include <cstdint>
#include <string>

#include "meap/core/config_schema.hpp"

namespace meap {

struct ModelConfig {
  int64_t vocab_size = 0;   // model.vocab_size, [MASK] and the other specials included
  int64_t dim = 0;          // model.dim (C)
  int64_t n_layers = 0;     // model.n_layers (L)
  int64_t n_heads = 0;      // model.n_heads (Hq)
  int64_t n_kv_heads = 0;   // model.n_kv_heads (Hkv); 0 in YAML means = n_heads
  int64_t ffn_dim = 0;      // model.ffn_dim (F), the SwiGLU hidden size
  int64_t max_seq_len = 0;  // model.max_seq_len
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;  // output head shares the token embedding
  double init_std = 0.02;

  bool operator==(const ModelConfig&) const = default;

  int64_t head_dim() const { return dim / n_heads; }
  int64_t qkv_dim() const { return (n_heads + 2 * n_kv_heads) * head_dim(); }

  // Throws meap::Error naming the key ("model.n_heads ...") when the shape is impossible.
  void validate() const;
};

// The keys of the `model:` section (model.n_kv_heads = 0 in YAML means n_heads: the run
// config resolves it after reading).
ConfigKeys<ModelConfig> model_config_keys();

// Model FLOPs of one training token (forward + backward) at sequence length seq_len: 6 per
// matmul weight (2 forward, 4 backward; the output head counts even when tied) plus
// 12 L T C for the attention scores and values (PaLM's convention, the full T x T). The
// numerator of MFU; recomputation is not counted (that would be hardware FLOPs).
double training_flops_per_token(const ModelConfig& config, int64_t seq_len);

}  // namespace meap
