// Llama's precisions and activation recomputation on the CPU: recomputation gives
// bit-identical losses, gradients and logits (f32 and f64, GQA) with less activation
// memory; f32/f64 models are their own master (no extra memory); the memory plan's bytes
// per dtype; bf16 is refused on the CPU naming the config key.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "meap/backend/arena.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/llama_io.hpp"
#include "meap/core/rng.hpp"
#include "fixtures.hpp"

using namespace meap;
using Catch::Matchers::Contains;

namespace {

// Grouped-query attention (4 query heads, 2 KV heads) and 3 layers, so that recomputation
// runs for layers other than the last (whose values are still in the shared buffers).
ModelConfig gqa_config() {  // 3 layers; init_std: every path carries a visible gradient
  return meap_test::tiny_llama(13, 16, 24, 8, 0.3, false, 3);
}

using Batch = meap_test::RandomBatch;
using meap_test::random_batch;

std::vector<char> bytes_of(const Tensor& t) {
  const char* p = static_cast<const char*>(t.data);
  return std::vector<char>(p, p + t.nbytes());
}

const Recompute kModes[] = {Recompute::mlp, Recompute::attention, Recompute::all};

}  // namespace

TEST_CASE("recompute gives bit-identical losses, gradients and logits", "[model][recompute]") {
  const ModelConfig cfg = gqa_config();
  auto be = make_backend(meap::DeviceChoice::cpu);
  const int64_t B = 3, T = 8;
  for (DType dt : {DType::f32, DType::f64}) {
    Llama ref(cfg, *be, B, T, dt);
    ref.init_weights(7);
    for (Recompute mode : kModes) {
      INFO(dtype_name(dt) << " recompute " << enum_name(mode));
      Llama model(cfg, *be, B, T, dt, 1, mode);
      model.init_weights(7);
      REQUIRE(bytes_of(model.flat_parameters()) == bytes_of(ref.flat_parameters()));
      ref.zero_grad();
      model.zero_grad();
      // Two accumulated micro-batches, the second a smaller (B, T) prefix of the buffers.
      const std::tuple<int64_t, int64_t, uint64_t> shapes[] = {{B, T, 1}, {2, 5, 2}};
      for (const auto& [b, t, seed] : shapes) {
        const Batch batch = random_batch(b * t, cfg.vocab_size, seed);
        const double want = ref.forward(batch.inputs.data(), batch.targets.data(),
                                        batch.weights.data(), b, t, 0.01);
        const double got = model.forward(batch.inputs.data(), batch.targets.data(),
                                         batch.weights.data(), b, t, 0.01);
        CHECK(got == want);
        ref.backward();
        model.backward();
        CHECK(bytes_of(model.flat_gradients()) == bytes_of(ref.flat_gradients()));
      }
      const Batch batch = random_batch(B * T, cfg.vocab_size, 3);
      ref.forward_logits(batch.inputs.data(), B, T);
      model.forward_logits(batch.inputs.data(), B, T);
      CHECK(bytes_of(model.logits()) == bytes_of(ref.logits()));
    }
  }
}

TEST_CASE("recompute shrinks the activation memory by the dropped per-layer tensors",
          "[model][recompute]") {
  // The tinyllama-1.1b shape (GQA 32/4, ffn 5632) at a small batch, f32 and bf16.
  ModelConfig c;
  c.vocab_size = 32000;
  c.dim = 2048;
  c.n_layers = 22;
  c.n_heads = 32;
  c.n_kv_heads = 4;
  c.ffn_dim = 5632;
  c.max_seq_len = 2048;
  const int64_t B = 2, T = 512, N = B * T;
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(dtype_name(dt));
    const size_t e = dtype_size(dt), st = 4;  // stats are f32 in both
    auto plan = [&](Recompute r) { return Llama::memory_plan(c, B, T, dt, r).activation_bytes; };
    const size_t none = plan(Recompute::none), mlp = plan(Recompute::mlp),
                 att = plan(Recompute::attention), all = plan(Recompute::all);
    // All layers but one share ln2 (N, C), rstd2 (N), gate_up (N, 2F), act (N, F) ...
    const size_t mlp_layer = arena_aligned(N * c.dim * e) + arena_aligned(N * st) +
                             arena_aligned(N * 2 * c.ffn_dim * e) +
                             arena_aligned(N * c.ffn_dim * e);
    // ... and att (N, Hq D), lse (N Hq).
    const size_t att_layer = arena_aligned(N * c.n_heads * c.head_dim() * e) +
                             arena_aligned(N * c.n_heads * st);
    CHECK(none - mlp == (c.n_layers - 1) * mlp_layer);
    CHECK(none - att == (c.n_layers - 1) * att_layer);
    CHECK(none - all == (c.n_layers - 1) * (mlp_layer + att_layer));
    CHECK(all < mlp);
    CHECK(mlp < att);
    std::printf("activation bytes (%s, B %ld, T %ld): none %zu, mlp %zu, attention %zu, all %zu\n",
                std::string(dtype_name(dt)).c_str(), static_cast<long>(B),
                static_cast<long>(T), none, mlp, att, all);
  }
}

TEST_CASE("f32 and f64 models are their own master: no extra memory", "[model][precision]") {
  const ModelConfig cfg = gqa_config();
  auto be = make_backend(meap::DeviceChoice::cpu);
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    Llama model(cfg, *be, 1, 4, dt);
    CHECK(model.grad_dtype() == dt);
    CHECK(model.flat_master().data == model.flat_parameters().data);
    CHECK(model.flat_master().dtype == dt);
    CHECK(model.flat_master().numel() == model.flat_parameters().numel());
    for (const NamedParameter& p : model.parameters()) {
      CHECK(p.master.data == p.value.data);
      CHECK(p.master.dtype == dt);
    }
    const LlamaMemoryPlan plan = Llama::memory_plan(cfg, 1, 4, dt);
    CHECK(plan.master_bytes == 0);
    CHECK(plan.parameter_bytes == plan.n_flat * dtype_size(dt));
    CHECK(plan.gradient_bytes == plan.parameter_bytes);

    // init writes the master, which is the parameters; syncing changes nothing.
    model.init_weights(3);
    const std::vector<char> before = bytes_of(model.flat_parameters());
    model.sync_working_copy();
    CHECK(bytes_of(model.flat_parameters()) == before);
  }
}

TEST_CASE("memory plan: bf16 weights and activations, fp32 master and gradients",
          "[model][precision]") {
  const ModelConfig cfg = gqa_config();
  const LlamaMemoryPlan f = Llama::memory_plan(cfg, 2, 8, DType::f32);
  const LlamaMemoryPlan h = Llama::memory_plan(cfg, 2, 8, DType::bf16);
  CHECK(h.n_flat == f.n_flat);
  CHECK(h.parameter_bytes == h.n_flat * 2);
  CHECK(h.master_bytes == h.n_flat * 4);
  CHECK(h.gradient_bytes == h.n_flat * 4);
  // bf16 halves the activations but for token ids, weights and the f32 statistics.
  CHECK(h.activation_bytes < f.activation_bytes);
  CHECK(2 * h.activation_bytes > f.activation_bytes);
}

TEST_CASE("bf16 on a CPU backend is refused naming train.precision", "[model][precision]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  REQUIRE_THROWS_WITH(Llama(gqa_config(), *be, 1, 4, DType::bf16),
                      Contains("bf16 needs the CUDA backend") &&
                          Contains("train.precision=fp32"));
  REQUIRE_THROWS_WITH(Llama(gqa_config(), *be, 1, 4, DType::i32), Contains("f32, f64 or bf16"));
}

TEST_CASE("train.recompute names parse and print", "[model][recompute]") {
  for (Recompute r : {Recompute::none, Recompute::mlp, Recompute::attention, Recompute::all})
    CHECK(parse_enum<Recompute>(enum_name(r), "train.recompute") == r);
  REQUIRE_THROWS_WITH(parse_enum<Recompute>("everything", "train.recompute"),
                      Contains("train.recompute") && Contains("everything"));
}

TEST_CASE("weights files hold the master and loading restores it exactly", "[model][precision]") {
  const ModelConfig cfg = gqa_config();
  auto be = make_backend(meap::DeviceChoice::cpu);
  Llama a(cfg, *be, 1, 4), b(cfg, *be, 1, 4, DType::f32, 1, Recompute::all);
  a.init_weights(11);
  const std::string path = "/tmp/meap_test_precision_weights-" + std::to_string(::getpid()) +
                           ".safetensors";
  save_llama_weights(a, path);
  load_llama_weights(b, path);
  std::remove(path.c_str());
  CHECK(bytes_of(b.flat_master()) == bytes_of(a.flat_master()));
  CHECK(bytes_of(b.flat_parameters()) == bytes_of(a.flat_parameters()));
}
