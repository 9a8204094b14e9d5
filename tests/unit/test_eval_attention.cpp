// The `attn` statistics and the `ppl` numbers on models whose answers are known in closed
// form: a Llama with zero query projections attends uniformly (p(i, j) = 1 / (i + 1)) whatever
// its input, and one with a zero output head predicts uniformly (loss = ln V per token).
#include <catch2/catch.hpp>

#include <cmath>

#include "meap/eval/attention_analysis.hpp"
#include "meap/eval/attention_maps.hpp"
#include "meap/eval/eval_rng.hpp"
#include "meap/eval/perplexity.hpp"
#include "fixtures.hpp"

using namespace meap;

namespace {

using meap_test::ByteCodec;  // ids 5.. are bytes; 2 = EOS, 4 = [MASK]

ModelConfig small_config() { return meap_test::tiny_llama(32, 16, 24, 24, 0.3); }

// Zeroes rows [begin, end) of a CPU f32 parameter.
void zero_rows(Llama& model, const std::string& name, int64_t begin, int64_t end) {
  const Tensor w = model.parameter(name).value;
  const int64_t cols = w.dim(1);
  std::fill(w.as<float>() + begin * cols, w.as<float>() + end * cols, 0.0f);
}

std::vector<int32_t> random_text(int64_t n, int32_t vocab) {
  EvalRng rng(3, 3);
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(5 + static_cast<int32_t>(rng.below(vocab - 5)));
  return t;
}

}  // namespace

TEST_CASE("eval: attention statistics on hand-written maps", "[eval]") {
  AttentionMaps m;
  m.heads = 1;
  m.T = 3;
  m.p = {1, 0, 0,  //
         0.25, 0.75, 0,  //
         0.5, 0.2, 0.3};
  CHECK(received_attention(m, {0}) == Approx((1 + 0.25 + 0.5) / 3));
  CHECK(received_attention(m, {1}) == Approx((0.75 + 0.2) / 2));
  CHECK(received_attention(m, {0, 2}) == Approx(((1 + 0.25 + 0.5) / 3 + 0.3) / 2));
  // Rows with two keys of {0, 1}: i = 1 (0.25, 0.75) and i = 2 (0.5, 0.2).
  CHECK(attention_variance(m, {0, 1}) == Approx((0.0625 + 0.0225) / 2));
  CHECK(span_share(m, 0, 1, 1, 3) == Approx((0.25 + 0.5) / 2));
  CHECK(span_share(m, 0, 2, 2, 3) == Approx(0.7));
}

TEST_CASE("eval: a model with zero queries attends uniformly, and attn measures it", "[eval]") {
  const ModelConfig c = small_config();
  auto be = make_backend(DeviceChoice::cpu);
  Llama model(c, *be, 1, c.max_seq_len);
  model.init_weights(7);
  for (int64_t l = 0; l < c.n_layers; ++l)
    zero_rows(model, "layers." + std::to_string(l) + ".attention.wqkv.weight", 0,
              c.n_heads * c.head_dim());
  const ByteCodec codec;
  const std::vector<int32_t> text = random_text(200, static_cast<int32_t>(c.vocab_size));
  const int64_t T = c.max_seq_len;

  model.forward_logits(text.data(), 1, T);
  const std::vector<AttentionMaps> maps = attention_maps(model, 0);
  REQUIRE(maps.size() == 2);
  double worst = 0;
  for (const AttentionMaps& m : maps)
    for (int64_t h = 0; h < c.n_heads; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j <= i; ++j) worst = std::max(worst, std::abs(m.at(h, i, j) - 1.0 / (i + 1)));
  CHECK(worst < 1e-12);

  AttentionOptions o;
  o.sequences = 3;
  o.mask_ratio = 0.25;
  o.seed = 11;
  const AttentionReport r = analyze_attention(model, codec, text, {}, o);
  CHECK(r.masked_positions == 3 * 6);  // round(0.25 * 24) per sequence
  // Uniform attention: position j receives mean_{i >= j} 1 / (i + 1), masked or not, and
  // attention over any key set has zero variance. The masked positions differ per sequence,
  // so compare with the closed form through the masker's own choice of positions.
  for (const AttentionLayerStats& s : r.layers) {
    CHECK(s.received_masked == Approx(s.received_clean).epsilon(1e-12));
    CHECK(std::abs(s.variance_masked) < 1e-15);
    CHECK(std::abs(s.variance_clean) < 1e-15);
  }
  // Every position is a candidate; the mean over all of them is the closed form's mean.
  double lo = 1, hi = 0;
  for (int64_t j = 0; j < T; ++j) {
    double a = 0;
    for (int64_t i = j; i < T; ++i) a += 1.0 / (i + 1);
    a /= static_cast<double>(T - j);
    lo = std::min(lo, a);
    hi = std::max(hi, a);
  }
  CHECK(r.overall.received_masked >= lo);
  CHECK(r.overall.received_masked <= hi);

  // The span share from the same maps: span [2, 5), queries [10, 24): mean of 3 / (i + 1).
  double expected = 0;
  for (int64_t i = 10; i < T; ++i) expected += 3.0 / (i + 1);
  expected /= T - 10;
  CHECK(span_share(maps[1], 2, 5, 10, T) == Approx(expected).epsilon(1e-12));
}

TEST_CASE("eval: attn's received attention matches the closed form position by position",
          "[eval]") {
  const ModelConfig c = small_config();
  auto be = make_backend(DeviceChoice::cpu);
  Llama model(c, *be, 1, c.max_seq_len);
  model.init_weights(8);
  for (int64_t l = 0; l < c.n_layers; ++l)
    zero_rows(model, "layers." + std::to_string(l) + ".attention.wqkv.weight", 0,
              c.n_heads * c.head_dim());
  const std::vector<int32_t> text = random_text(40, static_cast<int32_t>(c.vocab_size));
  model.forward_logits(text.data(), 1, c.max_seq_len);
  const AttentionMaps m = attention_maps(model, 0)[0];
  const int64_t T = c.max_seq_len;
  for (int64_t j : {0, 5, 23}) {
    double a = 0;
    for (int64_t i = j; i < T; ++i) a += 1.0 / (i + 1);
    CHECK(received_attention(m, {j}) == Approx(a / (T - j)).epsilon(1e-12));
  }
}

TEST_CASE("eval: ppl of a uniform predictor is ln V per token", "[eval]") {
  const ModelConfig c = small_config();
  auto be = make_backend(DeviceChoice::cpu);
  Llama model(c, *be, 2, c.max_seq_len);
  model.init_weights(9);
  zero_rows(model, "output.weight", 0, c.vocab_size);  // logits all 0
  const ByteCodec codec;
  const std::vector<int32_t> text = random_text(24 * 5 + 7, static_cast<int32_t>(c.vocab_size));
  const PerplexityResult r = evaluate_perplexity(model, codec, text, {});
  CHECK(r.tokens == 24 * 5 + 6);
  CHECK(r.windows == 6);  // 5 full windows and a tail of 6
  CHECK(r.bytes == r.tokens);  // one byte per token with this codec
  CHECK(r.loss == Approx(std::log(32.0)).epsilon(1e-6));
  CHECK(r.perplexity == Approx(32.0).epsilon(1e-5));
  CHECK(r.bits_per_byte == Approx(5.0).epsilon(1e-6));  // log2(32) bits per one-byte token
}
