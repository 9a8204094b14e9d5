// The step-by-step training harness (tests/train_steps.hpp) on the CPU: it trains, it is
// deterministic, and two precisions from the same weights track each other -- the same
// checks tests/gpu/test_mixed_precision_step.cpp makes of bf16 on CUDA.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "train_steps.hpp"

using namespace meap;
using namespace meap::testing;

TEST_CASE("training steps: f32 tracks f64 and repeats bit for bit", "[model][precision]") {
  const ModelConfig cfg = small_gqa();
  const int64_t B = 2, T = 16;
  const auto batches = step_batches(10, B, T, cfg.vocab_size, 5);
  auto be = make_backend(meap::DeviceChoice::cpu);
  Llama f64(cfg, *be, B, T, DType::f64), f32(cfg, *be, B, T, DType::f32),
      again(cfg, *be, B, T, DType::f32, 1, Recompute::all);
  for (Llama* m : {&f64, &f32, &again}) m->init_weights(17);
  const StepRun r64 = train_steps(f64, batches, B, T), r32 = train_steps(f32, batches, B, T),
                r32b = train_steps(again, batches, B, T);
  REQUIRE(r32.losses.size() == 10);
  double worst = 0;
  for (size_t s = 0; s < r32.losses.size(); ++s) {
    INFO("step " << s + 1 << ": f64 " << r64.losses[s] << ", f32 " << r32.losses[s]);
    const double rel = std::abs(r32.losses[s] - r64.losses[s]) / r64.losses[s];
    CHECK(rel < 1e-5);
    worst = std::max(worst, rel);
    CHECK(r32b.losses[s] == r32.losses[s]);
  }
  CHECK(r32b.master == r32.master);
  // It learns: target = 3 * input + 1 (mod V) is a fixed map.
  CHECK(r32.losses.back() < 0.9 * r32.losses.front());
  std::printf("training steps: f32 vs f64 loss, worst relative difference %.3g; "
              "loss %.4f -> %.4f\n",
              worst, r32.losses.front(), r32.losses.back());
}
