// The learning-rate schedule: linear warmup to optim.lr, then cosine decay to optim.min_lr
// at train.max_steps (the convention of llm.c, litgpt and torchtitan).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace meap {

// step is the 1-based optimizer update number.
inline double learning_rate(int64_t step, double lr, double min_lr, int64_t warmup_steps,
                            int64_t max_steps) {
  if (warmup_steps > 0 && step <= warmup_steps)
    return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (max_steps <= warmup_steps) return lr;
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) /
                                         static_cast<double>(max_steps - warmup_steps),
                                     0.0, 1.0);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(3.141592653589793 * progress));
}

}  // namespace meap
