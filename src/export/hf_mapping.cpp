// meap <-> Hugging Face Llama: tensor names, row blocks, and config.json fields.
//
// meap packs q, k and v into one matrix (wqkv, rows: Hq*D query rows, then Hkv*D key
// rows, then Hkv*D value rows) and gate and up into one (w_gate_up: F gate rows, then F up
// rows); HF keeps them apart. Both rotate pairs (i, i + D/2) in RoPE, so no row
// permutation is needed (checked by tests/export against transformers' own logits).
#include <algorithm>

#include <nlohmann/json.hpp>

#include "meap/core/error.hpp"
#include "meap/export/hf_format.hpp"

namespace meap {

std::vector<int64_t> HfTensorMapping::hf_shape() const {
  std::vector<int64_t> s = meap_shape;
  s[0] = row_end - row_begin;
  return s;
}

std::vector<HfTensorMapping> hf_tensor_mappings(const ModelConfig& c) {
  std::vector<HfTensorMapping> out;
  const auto whole = [&](std::string hf, std::string meap, std::vector<int64_t> shape) {
    const int64_t rows = shape[0];
    out.push_back({std::move(hf), std::move(meap), std::move(shape), 0, rows});
  };
  const int64_t D = c.head_dim(), q_rows = c.n_heads * D, kv_rows = c.n_kv_heads * D;
  whole("model.embed_tokens.weight", "tok_embeddings.weight", {c.vocab_size, c.dim});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string me = "layers." + std::to_string(l) + ".";
    const std::vector<int64_t> qkv_shape{c.qkv_dim(), c.dim}, gu_shape{2 * c.ffn_dim, c.dim};
    whole(hf + "input_layernorm.weight", me + "attention_norm.weight", {c.dim});
    out.push_back({hf + "self_attn.q_proj.weight", me + "attention.wqkv.weight", qkv_shape, 0,
                   q_rows});
    out.push_back({hf + "self_attn.k_proj.weight", me + "attention.wqkv.weight", qkv_shape,
                   q_rows, q_rows + kv_rows});
    out.push_back({hf + "self_attn.v_proj.weight", me + "attention.wqkv.weight", qkv_shape,
                   q_rows + kv_rows, q_rows + 2 * kv_rows});
    whole(hf + "self_attn.o_proj.weight", me + "attention.wo.weight", {c.dim, q_rows});
    whole(hf + "post_attention_layernorm.weight", me + "ffn_norm.weight", {c.dim});
    out.push_back({hf + "mlp.gate_proj.weight", me + "feed_forward.w_gate_up.weight", gu_shape,
                   0, c.ffn_dim});
    out.push_back({hf + "mlp.up_proj.weight", me + "feed_forward.w_gate_up.weight", gu_shape,
                   c.ffn_dim, 2 * c.ffn_dim});
    whole(hf + "mlp.down_proj.weight", me + "feed_forward.w_down.weight", {c.dim, c.ffn_dim});
  }
  whole("model.norm.weight", "norm.weight", {c.dim});
  if (!c.tie_embeddings) whole("lm_head.weight", "output.weight", {c.vocab_size, c.dim});
  return out;
}

nlohmann::json hf_llama_config(const ModelConfig& c, const HfSpecialTokens& special,
                               DType dtype) {
  MEAP_CHECK(dtype == DType::f32 || dtype == DType::bf16, "export dtype f32 or bf16");
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.dim},
      {"intermediate_size", c.ffn_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"head_dim", c.head_dim()},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"pretraining_tp", 1},
      {"initializer_range", c.init_std},
      {"tie_word_embeddings", c.tie_embeddings},
      {"use_cache", true},
      // A tokenizer without BOS (GPT-2, Qwen2.5 style): null, as transformers writes it.
      {"bos_token_id", special.bos >= 0 ? nlohmann::json(special.bos) : nlohmann::json()},
      {"eos_token_id", special.eos},
      {"torch_dtype", dtype == DType::bf16 ? "bfloat16" : "float32"},
  };
  if (special.pad >= 0) j["pad_token_id"] = special.pad;
  return j;
}

namespace {

// config.json fields, read with the defaults transformers' LlamaConfig uses.
class HfFields {
 public:
  HfFields(const nlohmann::json& j, const std::string& source) : j_(j), source_(source) {}

  int64_t integer(const char* key) const {
    if (!j_.contains(key)) fail(source_, ": field '", key, "' is missing");
    return integer_value(key);
  }
  int64_t integer_or(const char* key, int64_t fallback) const {
    if (!j_.contains(key) || j_.at(key).is_null()) return fallback;
    return integer_value(key);
  }
  double number_or(const char* key, double fallback) const {
    if (!j_.contains(key) || j_.at(key).is_null()) return fallback;
    if (!j_.at(key).is_number()) fail(source_, ": field '", key, "' must be a number");
    return j_.at(key).get<double>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!j_.contains(key) || j_.at(key).is_null()) return fallback;
    if (!j_.at(key).is_boolean()) fail(source_, ": field '", key, "' must be true or false");
    return j_.at(key).get<bool>();
  }
  // Refuses a field whose value meap's decoder does not implement.
  void require_absent_or(const char* key, const nlohmann::json& allowed,
                         const char* why) const {
    if (!j_.contains(key) || j_.at(key).is_null() || j_.at(key) == allowed) return;
    fail(source_, ": field '", key, "' is ", j_.at(key).dump(), "; meap supports only ",
         allowed.is_null() ? std::string("null") : allowed.dump(), " (", why, ")");
  }

 private:
  int64_t integer_value(const char* key) const {
    const auto& v = j_.at(key);
    if (!v.is_number_integer()) fail(source_, ": field '", key, "' must be an integer, got ",
                                     v.dump());
    return v.get<int64_t>();
  }
  const nlohmann::json& j_;
  const std::string& source_;
};

}  // namespace

ModelConfig model_config_from_hf(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail(source, " is not a JSON object");
  const HfFields f(j, source);
  const bool llama_arch =
      j.contains("architectures") && j.at("architectures").is_array() &&
      std::any_of(j.at("architectures").begin(), j.at("architectures").end(),
                  [](const nlohmann::json& a) { return a == "LlamaForCausalLM"; });
  if (!llama_arch) {
    const std::string found = j.contains("architectures") ? j.at("architectures").dump()
                                                          : std::string("(missing)");
    fail(source, ": field 'architectures' is ", found,
         "; meap imports LlamaForCausalLM models only");
  }
  if (j.value("model_type", std::string("llama")) != "llama")
    fail(source, ": field 'model_type' is ", j.at("model_type").dump(), "; expected \"llama\"");
  f.require_absent_or("rope_scaling", nullptr, "plain RoPE without scaling");
  f.require_absent_or("attention_bias", false, "no biases");
  f.require_absent_or("mlp_bias", false, "no biases");
  f.require_absent_or("hidden_act", "silu", "SwiGLU");
  f.require_absent_or("pretraining_tp", 1, "no tensor-parallel slicing");

  ModelConfig c;
  c.vocab_size = f.integer("vocab_size");
  c.dim = f.integer("hidden_size");
  c.ffn_dim = f.integer("intermediate_size");
  c.n_layers = f.integer("num_hidden_layers");
  c.n_heads = f.integer("num_attention_heads");
  c.n_kv_heads = f.integer_or("num_key_value_heads", c.n_heads);
  c.max_seq_len = f.integer_or("max_position_embeddings", 2048);
  c.norm_eps = f.number_or("rms_norm_eps", 1e-6);
  c.rope_theta = f.number_or("rope_theta", 10000.0);
  c.tie_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.init_std = f.number_or("initializer_range", 0.02);
  if (c.n_heads > 0 && c.dim % c.n_heads == 0) {
    const int64_t head_dim = f.integer_or("head_dim", c.dim / c.n_heads);
    if (head_dim != c.dim / c.n_heads)
      fail(source, ": field 'head_dim' is ", head_dim, " but hidden_size / num_attention_heads "
           "is ", c.dim / c.n_heads, "; meap's attention needs head_dim = hidden_size / heads");
  }
  try {
    c.validate();
  } catch (const Error& e) {
    fail(source, ": ", e.what(), " (model.* are read from hidden_size, num_attention_heads, "
         "num_key_value_heads, intermediate_size, ...)");
  }
  return c;
}

}  // namespace meap
