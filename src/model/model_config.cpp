#include "meap/model/model_config.hpp"

#include "meap/core/error.hpp"

namespace meap {

namespace {
void require_positive(const char* key, int64_t v) {
  if (v <= 0) fail("model.", key, " must be a positive integer, got ", v);
}

// Upper bounds far above any model meap can train, so that every size product below (and
// in the layout, the memory plan and the FLOP count) fits int64 with room to spare.
void require_at_most(const char* key, int64_t v, int64_t max) {
  if (v > max)
    fail("model.", key, " = ", v, " is too large (at most ", max,
         "); the sizes would overflow before any memory is allocated");
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
  require_at_most("vocab_size", vocab_size, (int64_t{1} << 31) - 1);
  require_at_most("dim", dim, int64_t{1} << 20);
  require_at_most("n_layers", n_layers, int64_t{1} << 16);
  require_at_most("n_heads", n_heads, dim);
  require_at_most("n_kv_heads", n_kv_heads, n_heads);
  require_at_most("ffn_dim", ffn_dim, int64_t{1} << 22);
  require_at_most("max_seq_len", max_seq_len, int64_t{1} << 24);
  // The parameter count in long double (no overflow), against 2^40 (a trillion parameters,
  // 4 TiB of fp32 master weights alone).
  const long double per_layer =
      static_cast<long double>(dim) * ((n_heads + 2 * n_kv_heads) * (dim / n_heads)) +
      static_cast<long double>(n_heads) * (dim / n_heads) * dim + 3.0L * dim * ffn_dim + 2.0L * dim;
  const long double params =
      n_layers * per_layer + 2.0L * static_cast<long double>(vocab_size) * dim + dim;
  if (params > static_cast<long double>(int64_t{1} << 40))
    fail("the model section describes ", static_cast<double>(params),
         " parameters (model.n_layers=", n_layers, ", model.dim=", dim, ", model.ffn_dim=",
         ffn_dim, ", model.vocab_size=", vocab_size, "), more than meap's limit of 2^40; lower them");  if (dim % n_heads != 0)
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
