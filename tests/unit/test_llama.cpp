// The whole model: finite-difference gradient check in double for every parameter tensor
// (tied and untied head, grouped-query attention), determinism, and shape errors.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>

#include "gradcheck.hpp"
#include "meap/model/llama.hpp"
#include "fixtures.hpp"

using namespace meap;
using namespace meap::testing;

namespace {

ModelConfig tiny_config(bool tied) {  // init_std: every path carries a visible gradient
  return meap_test::tiny_llama(11, 16, 24, 8, 0.3, tied);
}

using Batch = meap_test::RandomBatch;
using meap_test::random_batch;

}  // namespace

TEST_CASE("Llama gradients match finite differences in double", "[model][gradcheck]") {
  for (bool tied : {false, true}) {
    const ModelConfig cfg = tiny_config(tied);
    auto be = make_backend(meap::DeviceChoice::cpu);
    const int64_t B = 2, T = 6;
    Llama model(cfg, *be, B, T, DType::f64);
    model.init_weights(42);
    const Batch batch = random_batch(B * T, cfg.vocab_size, 3);
    auto loss = [&] {
      return model.forward(batch.inputs.data(), batch.targets.data(), batch.weights.data(), B, T);
    };
    model.zero_grad();
    loss();
    model.backward();
    CHECK(model.parameters().size() == (tied ? 14u : 15u));
    double worst = 0;
    for (const NamedParameter& p : model.parameters()) {
      const size_t n = p.value.numel();
      const Vec fd = finite_difference(p.value.as<double>(), n, loss);
      const double err = relative_error(p.grad.as<double>(), fd.data(), n);
      INFO((tied ? "tied " : "untied ") << p.name << " relative error " << err);
      CHECK(err <= 1e-6);
      worst = std::max(worst, err);
    }
    // Printed so the measured margin shows up in ctest's log.
    std::printf("model gradcheck (%s head): worst relative error %.3g over %zu tensors\n",
                tied ? "tied" : "untied", worst, model.parameters().size());
  }
}

TEST_CASE("Llama forward and backward are bit-identical from run to run", "[model]") {
  const ModelConfig cfg = tiny_config(false);
  auto be = make_backend(meap::DeviceChoice::cpu);
  const int64_t B = 3, T = 8;
  const Batch batch = random_batch(B * T, cfg.vocab_size, 9);
  std::vector<float> first;
  double first_loss = 0;
  for (int run = 0; run < 2; ++run) {
    Llama model(cfg, *be, B, T);
    model.init_weights(5);
    model.zero_grad();
    const double loss =
        model.forward(batch.inputs.data(), batch.targets.data(), batch.weights.data(), B, T);
    model.backward();
    const Tensor g = model.flat_gradients();
    std::vector<float> grads(g.as<float>(), g.as<float>() + g.numel());
    if (run == 0) {
      first = grads;
      first_loss = loss;
    } else {
      CHECK(loss == first_loss);
      CHECK(std::memcmp(grads.data(), first.data(), grads.size() * 4) == 0);
    }
  }
}

TEST_CASE("Llama gradients accumulate over micro-batches", "[model]") {
  const ModelConfig cfg = tiny_config(true);
  auto be = make_backend(meap::DeviceChoice::cpu);
  const int64_t T = 8;
  const Batch batch = random_batch(2 * T, cfg.vocab_size, 4);
  double total_weight = 0;
  for (float w : batch.weights) total_weight += w;

  Llama whole(cfg, *be, 2, T, DType::f64);
  whole.init_weights(1);
  whole.zero_grad();
  const double loss = whole.forward(batch.inputs.data(), batch.targets.data(),
                                    batch.weights.data(), 2, T);
  whole.backward();

  Llama halves(cfg, *be, 1, T, DType::f64);
  halves.init_weights(1);
  halves.zero_grad();
  double summed = 0;
  for (int m = 0; m < 2; ++m) {
    double w = 0;
    for (int64_t i = 0; i < T; ++i) w += batch.weights[m * T + i];
    summed += w * halves.forward(batch.inputs.data() + m * T, batch.targets.data() + m * T,
                                 batch.weights.data() + m * T, 1, T, 1.0 / total_weight);
    halves.backward();
  }
  CHECK(summed / total_weight == Approx(loss).epsilon(1e-12));
  const Tensor a = whole.flat_gradients(), b = halves.flat_gradients();
  CHECK(relative_error(b.as<double>(), a.as<double>(), a.numel()) < 1e-12);
}

TEST_CASE("Llama refuses impossible shapes naming the key", "[model][config]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  auto refused = [&](auto mutate, const std::string& key) {
    ModelConfig c = tiny_config(false);
    mutate(c);
    REQUIRE_THROWS_WITH(Llama(c, *be, 1, 4), Catch::Contains(key));
  };
  refused([](ModelConfig& c) { c.n_heads = 3; }, "model.n_heads");
  refused([](ModelConfig& c) { c.n_kv_heads = 3; }, "model.n_kv_heads");
  refused([](ModelConfig& c) { c.dim = 12; c.n_heads = 4; c.n_kv_heads = 4; }, "rotary");
  refused([](ModelConfig& c) { c.dim = 0; }, "model.dim");
  refused([](ModelConfig& c) { c.vocab_size = 0; }, "model.vocab_size");
  refused([](ModelConfig& c) { c.ffn_dim = 0; }, "model.ffn_dim");
  refused([](ModelConfig& c) { c.n_layers = 0; }, "model.n_layers");
}

TEST_CASE("Llama refuses out-of-vocabulary tokens and oversized batches", "[model]") {
  const ModelConfig cfg = tiny_config(false);
  auto be = make_backend(meap::DeviceChoice::cpu);
  Llama model(cfg, *be, 1, 4);
  model.init_weights(1);
  std::vector<int32_t> in = {1, 2, 11, 3}, tgt = {1, 2, 3, 4};
  std::vector<float> w(4, 1.0f);
  REQUIRE_THROWS_WITH(model.forward(in.data(), tgt.data(), w.data(), 1, 4),
                      Catch::Contains("token id 11") && Catch::Contains("vocabulary"));
  in[2] = 3;
  REQUIRE_THROWS_WITH(model.forward(in.data(), tgt.data(), w.data(), 2, 2),
                      Catch::Contains("exceeds"));
  REQUIRE_THROWS_WITH(Llama(cfg, *be, 1, 9), Catch::Contains("model.max_seq_len"));
}

TEST_CASE("backward reports flat gradient ranges, final when reported, tiling the buffer",
          "[model]") {
  for (bool tied : {false, true}) {
    const ModelConfig cfg = tiny_config(tied);
    auto be = make_backend(meap::DeviceChoice::cpu);
    const int64_t T = 8;
    const Batch batch = random_batch(2 * T, cfg.vocab_size, 9);
    Llama model(cfg, *be, 2, T, DType::f64);
    model.init_weights(2);
    model.zero_grad();
    model.forward(batch.inputs.data(), batch.targets.data(), batch.weights.data(), 2, T);
    const double* g = model.flat_gradients().as<double>();
    std::vector<std::pair<int64_t, int64_t>> ranges;
    std::vector<std::vector<double>> at_report;
    model.backward([&](int64_t begin, int64_t end) {
      ranges.push_back({begin, end});
      at_report.emplace_back(g + begin, g + end);
    });
    // Head + final norm, the layers top-down, the embedding: L + 2 ranges, end to start.
    REQUIRE(ranges.size() == static_cast<size_t>(cfg.n_layers + 2));
    int64_t expected_end = model.flat_gradients().numel();
    for (const auto& [begin, end] : ranges) {
      CHECK(end == expected_end);
      CHECK(begin < end);
      expected_end = begin;
    }
    CHECK(expected_end == 0);
    // Nothing wrote a range after it was reported (a tied head's gradient is in the
    // embedding's range, reported last).
    for (size_t r = 0; r < ranges.size(); ++r)
      CHECK(std::equal(at_report[r].begin(), at_report[r].end(), g + ranges[r].first));
  }
}
