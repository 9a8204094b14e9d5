// The HF mapping's own checks; transformers itself is the judge in tests/export.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "meap/backend/backend.hpp"
#include "meap/export/hf_format.hpp"
#include "meap/core/human_format.hpp"
#include "meap/model/llama.hpp"
#include "fixtures.hpp"

using namespace meap;

namespace {
ModelConfig small_config(bool tied) {
  return meap_test::tiny_llama(50, 32, 48, 16, ModelConfig{}.init_std, tied);
}
}  // namespace

TEST_CASE("Llama::parameter_shapes lists the built model's parameters", "[export]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  for (bool tied : {false, true}) {
    const ModelConfig c = small_config(tied);
    Llama model(c, *be, 1, 4);
    const auto shapes = Llama::parameter_shapes(c);
    REQUIRE(shapes.size() == model.parameters().size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Tensor& t = model.parameters()[i].value;
      CHECK(shapes[i].first == model.parameters()[i].name);
      CHECK(shapes[i].second == std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim));
    }
  }
}

TEST_CASE("HF row blocks tile every packed meap tensor exactly once", "[export]") {
  const ModelConfig c = small_config(false);
  const auto mappings = hf_tensor_mappings(c);
  for (const auto& [name, shape] : Llama::parameter_shapes(c)) {
    int64_t next_row = 0;
    for (const auto& m : mappings)
      if (m.meap_name == name) {
        CHECK(m.row_begin == next_row);
        CHECK(m.meap_shape == shape);
        next_row = m.row_end;
      }
    CHECK(next_row == shape[0]);
  }
  CHECK(mappings.size() == 1 + 9 * 2 + 1 + 1);  // embed, 9 per layer, norm, lm_head
}

TEST_CASE("config.json round-trips and refuses what meap cannot run", "[export]") {
  const ModelConfig c = small_config(true);
  const nlohmann::json j = hf_llama_config(c, HfSpecialTokens{}, DType::bf16);
  CHECK(j["torch_dtype"] == "bfloat16");
  CHECK(model_config_from_hf(j, "config.json") == c);

  auto refused = [&](nlohmann::json bad, const std::string& needle) {
    CHECK_THROWS_WITH(model_config_from_hf(bad, "config.json"), Catch::Contains(needle));
  };
  nlohmann::json bad = j;
  bad["architectures"] = {"MistralForCausalLM"};
  refused(bad, "field 'architectures'");
  bad = j;
  bad.erase("hidden_size");
  refused(bad, "field 'hidden_size' is missing");
  bad = j;
  bad["head_dim"] = 16;
  refused(bad, "field 'head_dim'");
  bad = j;
  bad["attention_bias"] = true;
  refused(bad, "field 'attention_bias'");
  bad = j;
  bad["num_key_value_heads"] = 3;
  refused(bad, "n_kv_heads");
  bad = j;
  bad["vocab_size"] = "many";
  refused(bad, "field 'vocab_size' must be an integer");
}

TEST_CASE("parse_byte_size reads the sizes people type", "[export]") {
  CHECK(parse_byte_size("5GB", "x") == 5'000'000'000ull);
  CHECK(parse_byte_size("500mb", "x") == 500'000'000ull);
  CHECK(parse_byte_size("2GiB", "x") == (2ull << 30));
  CHECK(parse_byte_size("4096", "x") == 4096);
  CHECK_THROWS_WITH(parse_byte_size("5 GB", "--max-shard-size"),
                    Catch::Contains("--max-shard-size expects a positive size"));
  CHECK_THROWS(parse_byte_size("0", "x"));
  CHECK_THROWS(parse_byte_size("GB", "x"));
}
