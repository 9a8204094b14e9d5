// AdamW over the flat parameters: the moments of the range this rank owns (all of it, or
// its ZeRO-1 shard), updated segment by segment so each parameter gets its own decay.
#pragma once

#include <vector>

#include "meap/backend/arena.hpp"
#include "meap/model/llama.hpp"
#include "meap/train/config.hpp"
#include "meap/train/zero.hpp"

namespace meap {

class AdamW {
 public:
  // Moments m, v (owned.length elements each, in the master's dtype: f32 for f32 and bf16
  // models) allocated once on the model's backend and zeroed.
  AdamW(Llama& model, Backend& backend, const ShardRange& owned);

  // One update of the master weights of owned() from `grads` (owned().length elements: the
  // summed gradient of that range), writing the bf16 working copy when the model has one.
  // AdamW is element-wise, so updating each parameter's part of the range with that
  // parameter's decay equals the per-tensor update.
  void update(const Tensor& grads, const OptimConfig& optim, double lr, int64_t step);

  const ShardRange& owned() const { return owned_; }
  const Tensor& m() const { return m_; }
  const Tensor& v() const { return v_; }
  size_t state_bytes() const { return arena_.capacity(); }

 private:
  Llama& model_;
  Backend& backend_;
  ShardRange owned_;
  std::vector<ShardSegment> segments_;
  Arena arena_;
  Tensor m_, v_;
};

}  // namespace meap
