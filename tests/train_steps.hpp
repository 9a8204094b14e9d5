// A few AdamW training steps on a Llama over any backend and precision, for the tests that
// compare precisions and backends step by step (tests/unit/test_train_steps.cpp on the CPU,
// tests/gpu/test_mixed_precision_step.cpp bf16 on CUDA against f32 on the CPU). It is the
// trainer's update in miniature: zero_grad, forward, backward, global-norm clip, AdamW on
// the master with the bf16 working copy written when the model is bf16.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "meap/backend/arena.hpp"
#include "meap/backend/backend.hpp"
#include "meap/model/llama.hpp"
#include "meap/core/rng.hpp"
#include "fixtures.hpp"

namespace meap::testing {

// The small GQA model (4 query heads sharing 2 kv heads) the step tests train.
inline ModelConfig small_gqa() { return meap_test::tiny_llama(32, 32, 64, 16); }

struct StepBatch {
  std::vector<int32_t> inputs, targets;  // (B, T) each
  std::vector<float> weights;            // (B, T)
};

// Learnable batches: each target is a fixed function of its input token (so the loss
// falls over the steps), a few positions weighted 0.
inline std::vector<StepBatch> step_batches(int steps, int64_t B, int64_t T, int64_t V,
                                           uint64_t seed) {
  std::vector<StepBatch> out(steps);
  for (int s = 0; s < steps; ++s)
    for (int64_t i = 0; i < B * T; ++i) {
      const auto r = philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(s), 0, 0},
                                philox_key(seed));
      const int32_t in = static_cast<int32_t>(r[0] % V);
      out[s].inputs.push_back(in);
      out[s].targets.push_back(static_cast<int32_t>((3 * in + 1) % V));
      out[s].weights.push_back(r[1] % 7 == 0 ? 0.0f : 1.0f);
    }
  return out;
}

struct StepRun {
  std::vector<double> losses;     // per step, before its update
  std::vector<double> grad_norms;
  std::vector<float> master;      // the flat master weights after the last step, as f32
};

// One step per batch, lr constant, weight decay 0.1 (none on norm gains), clip at 1.
inline StepRun train_steps(Llama& model, const std::vector<StepBatch>& batches, int64_t B,
                           int64_t T, double lr = 1e-2) {
  Backend& be = model.backend();
  const Tensor master = model.flat_master(), grads = model.flat_gradients();
  const bool bf16 = model.dtype() == DType::bf16;
  const int64_t n = master.numel();
  // Moments in the master's dtype (f32 for bf16 models), like the trainer's.
  Arena moments(be, 2 * arena_aligned(n * dtype_size(master.dtype)));
  const Tensor m = moments.take(master.dtype, {n}), v = moments.take(master.dtype, {n});
  be.fill_zero(m);
  be.fill_zero(v);
  const auto flat = [](const Tensor& t, int64_t offset, int64_t len) {
    return t.rows(offset, offset + len);
  };
  StepRun run;
  for (size_t s = 0; s < batches.size(); ++s) {
    const StepBatch& b = batches[s];
    model.zero_grad();
    run.losses.push_back(
        model.forward(b.inputs.data(), b.targets.data(), b.weights.data(), B, T));
    model.backward();
    const double norm = std::sqrt(be.sum_squares(grads));
    run.grad_norms.push_back(norm);
    if (norm > 1.0) be.scale(grads, 1.0 / norm);
    for (const NamedParameter& p : model.parameters()) {
      const int64_t len = p.master.numel();
      AdamWStep hp{lr, 0.9, 0.95, 1e-8, p.weight_decay ? 0.1 : 0.0,
                   static_cast<int64_t>(s) + 1};
      be.adamw_update(flat(master, p.offset, len), flat(grads, p.offset, len),
                      flat(m, p.offset, len), flat(v, p.offset, len), hp,
                      bf16 ? flat(model.flat_parameters(), p.offset, len) : Tensor{});
    }
  }
  run.master.resize(n);
  if (master.dtype == DType::f32) {
    be.copy_to_host(run.master.data(), master);
  } else {
    std::vector<double> d(n);
    be.copy_to_host(d.data(), master);
    for (int64_t i = 0; i < n; ++i) run.master[i] = static_cast<float>(d[i]);
  }
  return run;
}

}  // namespace meap::testing
