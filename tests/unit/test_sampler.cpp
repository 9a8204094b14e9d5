// Sampling: greedy is argmax, top-k stays in the top k, temperature -> 0 becomes greedy,
// draws are a pure function of (seed, step), [MASK] is never produced, and generate()
// on a tiny random Llama agrees with forward_logits computed by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "meap/model/llama.hpp"
#include "meap/core/rng.hpp"
#include "meap/model/sampler.hpp"
#include "fixtures.hpp"

using namespace meap;

namespace {

// Distinct logits in roughly [-3, 3], a pure function of seed.
std::vector<float> random_logits(int64_t vocab, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) v[i] = static_cast<float>(philox_normal(seed, 7, i)) * 1.5f;
  return v;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

SamplingOptions sampled(double temperature, int64_t top_k, uint64_t seed = 1) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.seed = seed;
  return o;
}

ModelConfig tiny_config() {  // init_std: the logits differ clearly from position to position
  return meap_test::tiny_llama(11, 16, 24, 8, 0.3);
}

// Argmax of the last position's logits, computed directly from forward_logits.
int32_t argmax_next(Llama& model, const std::vector<int32_t>& tokens) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t V = model.config().vocab_size;
  model.forward_logits(tokens.data(), 1, T);
  std::vector<float> all(static_cast<size_t>(T * V));
  model.backend().copy_to_host(all.data(), model.logits());
  return argmax(std::vector<float>(all.end() - V, all.end()));
}

}  // namespace

TEST_CASE("greedy sampling picks the argmax, ties to the lower id", "[generate]") {
  SamplingOptions greedy;
  greedy.greedy = true;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto logits = random_logits(50, seed);
    CHECK(sample_next(logits.data(), 50, greedy, seed) == argmax(logits));
    // temperature 0 and top-k 1 are greedy too
    CHECK(sample_next(logits.data(), 50, sampled(0.0, 40, seed), 3) == argmax(logits));
    CHECK(sample_next(logits.data(), 50, sampled(1.0, 1, seed), 3) == argmax(logits));
  }
  const std::vector<float> tie{0.f, 2.f, 1.f, 2.f};
  CHECK(sample_next(tie.data(), 4, greedy, 0) == 1);
}

TEST_CASE("top-k sampling never leaves the k most likely tokens", "[generate]") {
  const int64_t V = 100, k = 5;
  for (uint64_t l = 0; l < 5; ++l) {
    const auto logits = random_logits(V, 100 + l);
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    const std::set<int32_t> top(order.begin(), order.begin() + k);
    std::set<int32_t> seen;
    // A high temperature flattens the distribution, so anything outside the top k would
    // show up often if it were allowed.
    for (uint64_t seed = 0; seed < 100; ++seed)
      for (uint64_t step = 0; step < 20; ++step) {
        const int32_t id = sample_next(logits.data(), V, sampled(5.0, k, seed), step);
        REQUIRE(top.count(id) == 1);
        seen.insert(id);
      }
    CHECK(seen == top);  // and it does sample: every one of the k shows up
  }
}

TEST_CASE("sampling follows the softmax distribution", "[generate]") {
  const std::vector<float> logits{0.f, 1.f, 2.f, -1.f};
  std::vector<double> p(4);
  double z = 0;
  for (size_t i = 0; i < 4; ++i) z += p[i] = std::exp(logits[i]);
  std::vector<int> counts(4, 0);
  const int n = 20000;
  for (int step = 0; step < n; ++step) ++counts[sample_next(logits.data(), 4, sampled(1.0, 0), step)];
  for (size_t i = 0; i < 4; ++i) {
    const double expected = p[i] / z;
    const double sd = std::sqrt(expected * (1 - expected) / n);
    INFO("token " << i << " frequency " << counts[i] / double(n) << " expected " << expected);
    CHECK(std::abs(counts[i] / double(n) - expected) < 5 * sd);
  }
}

TEST_CASE("temperature -> 0 approaches greedy", "[generate]") {
  const int64_t V = 30;
  const auto logits = random_logits(V, 9);
  const int32_t best = argmax(logits);
  auto argmax_share = [&](double temperature) {
    int hits = 0;
    for (uint64_t step = 0; step < 2000; ++step)
      hits += sample_next(logits.data(), V, sampled(temperature, 0), step) == best;
    return hits;
  };
  const int hot = argmax_share(3.0), warm = argmax_share(1.0), cool = argmax_share(0.3);
  INFO("argmax picked " << hot << ", " << warm << ", " << cool << " of 2000");
  CHECK(hot < warm);
  CHECK(warm < cool);
  // exp(-40) per draw: a very cold sample is greedy for any practical purpose.
  std::vector<float> sorted = logits;
  std::sort(sorted.rbegin(), sorted.rend());
  CHECK(argmax_share((sorted[0] - sorted[1]) / 40.0) == 2000);
}

TEST_CASE("the same seed gives the same draws, another seed others", "[generate]") {
  const int64_t V = 64;
  const auto logits = random_logits(V, 4);
  auto draws = [&](uint64_t seed) {
    std::vector<int32_t> out;
    for (uint64_t step = 0; step < 64; ++step)
      out.push_back(sample_next(logits.data(), V, sampled(1.0, 0, seed), step));
    return out;
  };
  CHECK(draws(1) == draws(1));
  CHECK(draws(1) != draws(2));
  CHECK(draws(2) != draws(3));
}

TEST_CASE("the banned id is never sampled", "[generate]") {
  const int64_t V = 20;
  auto logits = random_logits(V, 5);
  const int32_t banned = 4;
  logits[banned] = 50.f;  // by far the most likely token
  SamplingOptions greedy;
  greedy.greedy = true;
  CHECK(sample_next(logits.data(), V, greedy, 0, -1) == banned);
  CHECK(sample_next(logits.data(), V, greedy, 0, banned) != banned);
  for (int64_t k : {0, 1, 3})
    for (uint64_t step = 0; step < 500; ++step)
      REQUIRE(sample_next(logits.data(), V, sampled(1.0, k), step, banned) != banned);

  // Non-finite logits are never chosen; nothing left to choose is an error.
  std::vector<float> odd{NAN, INFINITY, 0.5f, -INFINITY};
  for (uint64_t step = 0; step < 50; ++step)
    REQUIRE(sample_next(odd.data(), 4, sampled(1.0, 0), step) == 2);
  CHECK_THROWS_WITH(sample_next(odd.data(), 4, sampled(1.0, 0), 0, 2),
                    Catch::Contains("no token can be sampled"));
  CHECK_THROWS_WITH(sample_next(odd.data(), 4, sampled(-1.0, 0), 0),
                    Catch::Contains("temperature"));
  CHECK_THROWS_WITH(sample_next(odd.data(), 4, sampled(1.0, -2), 0), Catch::Contains("top-k"));
}

TEST_CASE("generate on a tiny Llama matches forward_logits by hand", "[generate]") {
  const ModelConfig cfg = tiny_config();
  auto be = make_backend(meap::DeviceChoice::cpu);
  Llama model(cfg, *be, 1, cfg.max_seq_len);
  model.init_weights(7);
  const std::vector<int32_t> context{2, 5, 9};
  const int32_t no_eos = -1, no_mask = -1;

  SamplingOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = 6;
  std::vector<int32_t> streamed;
  const auto out =
      generate(model, context, greedy, no_eos, no_mask, [&](int32_t t) { streamed.push_back(t); });
  REQUIRE(out.size() == 6);  // no EOS: stops at max_new_tokens
  CHECK(streamed == out);

  // The first two tokens by hand: argmax of the last position, appended, and again.
  std::vector<int32_t> ctx = context;
  const int32_t first = argmax_next(model, ctx);
  ctx.push_back(first);
  const int32_t second = argmax_next(model, ctx);
  CHECK(out[0] == first);
  CHECK(out[1] == second);

  // Past max_seq_len (3 + 6 > 8) the window slides: the last token is the argmax over the
  // last 8 tokens.
  std::vector<int32_t> all = context;
  all.insert(all.end(), out.begin(), out.end() - 1);
  CHECK(out.back() == argmax_next(model, std::vector<int32_t>(all.end() - 8, all.end())));

  // EOS stops generation (and is returned); a banned [MASK] is never produced.
  CHECK(generate(model, context, greedy, first, no_mask) == std::vector<int32_t>{first});
  CHECK(generate(model, context, greedy, no_eos, first)[0] != first);

  // Sampled generation is reproducible per seed.
  SamplingOptions s = sampled(1.0, 5, 11);
  s.max_new_tokens = 5;
  CHECK(generate(model, context, s, no_eos, no_mask) == generate(model, context, s, no_eos, no_mask));
  greedy.max_new_tokens = 0;
  CHECK(generate(model, context, greedy, no_eos, no_mask).empty());
  CHECK_THROWS_WITH(generate(model, {}, greedy, no_eos, no_mask), Catch::Contains("at least one"));
}
