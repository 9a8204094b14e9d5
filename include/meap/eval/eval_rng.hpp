// EvalRng: the random draws of evaluation item generators, from Philox keyed by the seed
// with one stream per item, so an item is a pure function of (--seed, task, item index)
// whatever else is generated.
#pragma once

#include <cstdint>

#include "meap/core/rng.hpp"

namespace meap {

class EvalRng {
 public:
  EvalRng(uint64_t seed, uint64_t stream) : key_(philox_key(seed)), stream_(stream) {}
  uint32_t next() {
    if (have_ == 0) {
      block_ = philox4x32({static_cast<uint32_t>(counter_), static_cast<uint32_t>(counter_ >> 32),
                           static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)},
                          key_);
      ++counter_;
      have_ = 4;
    }
    return block_[4 - have_--];
  }
  // Uniform in [0, n), n >= 1 (64 random bits reduced modulo n: bias below 2^-32 for n < 2^32).
  int64_t below(int64_t n) {
    const uint64_t r = (static_cast<uint64_t>(next()) << 32) | next();
    return static_cast<int64_t>(r % static_cast<uint64_t>(n));
  }
  double uniform() { return uniform_open01(next()); }  // (0, 1)

 private:
  PhiloxKey key_;
  uint64_t stream_, counter_ = 0;
  PhiloxCounter block_{};
  int have_ = 0;
};

}  // namespace meap
