#include "meap/model/model_config.hpp"

#include "meap/core/error.hpp"

namespace meap {

namespace {
void require_positive(const char* key, int64_t v) {
  if (v <= 0) fail("model.", key, " must be a positive integer, got ", v);
}
}  // namespace

void ModelConfig::validate() const {
  require_positive("vocab_size", vocab_size);
  require_positive("dim", dim);
  require_positive("n_layers", n_layers);
  require_positive("n_heads", n_heads);
  require_positive("n_kv_heads", n_kv_heads);
  require_positive("ffn_dim", ffn_dim);
  require_positive("max_seq_len", max_seq_len);
  if (dim % n_heads != 0)
    fail("model.n_heads (", n_heads, ") must divide model.dim (", dim,
         "); the head dimension is dim / n_heads");
  if (n_heads % n_kv_heads != 0)
    fail("model.n_kv_heads (", n_kv_heads, ") must divide model.n_heads (", n_heads,
         ") for grouped-query attention");
  if (head_dim() % 2 != 0)
    fail("model.dim / model.n_heads = ", head_dim(),
         " is odd; rotary embedding needs an even head dimension (change model.dim or "
         "model.n_heads)");
  if (!(rope_theta > 0)) fail("model.rope_theta must be positive, got ", rope_theta);
  if (!(norm_eps > 0)) fail("model.norm_eps must be positive, got ", norm_eps);
  if (!(init_std > 0)) fail("model.init_std must be positive, got ", init_std);
  if (vocab_size > (int64_t{1} << 31) - 1) fail("model.vocab_size is too large: ", vocab_size);
}

ConfigKeys<ModelConfig> model_config_keys() {
  return {{
      MEAP_CONFIG_KEY(ModelConfig, vocab_size),
      MEAP_CONFIG_KEY(ModelConfig, dim),
      MEAP_CONFIG_KEY(ModelConfig, n_layers),
      MEAP_CONFIG_KEY(ModelConfig, n_heads),
      MEAP_CONFIG_KEY(ModelConfig, n_kv_heads),
      MEAP_CONFIG_KEY(ModelConfig, ffn_dim),
      MEAP_CONFIG_KEY(ModelConfig, max_seq_len),
      MEAP_CONFIG_KEY(ModelConfig, rope_theta),
      MEAP_CONFIG_KEY(ModelConfig, norm_eps),
      MEAP_CONFIG_KEY(ModelConfig, tie_embeddings),
      MEAP_CONFIG_KEY(ModelConfig, init_std),
  }};
}

double training_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const double per_layer = static_cast<double>(c.dim) * c.qkv_dim() +          // wqkv
                           static_cast<double>(c.n_heads) * c.head_dim() * c.dim +  // wo
                           3.0 * c.dim * c.ffn_dim;                           // gate, up, down
  const double matmul_params = c.n_layers * per_layer + static_cast<double>(c.vocab_size) * c.dim;
  return 6.0 * matmul_params + 12.0 * c.n_layers * static_cast<double>(seq_len) * c.dim;
}

}  // namespace meap
