// MeapMasker: turns one clean training sequence into MEAP (inputs, targets, weights).
// The masked positions are a pure function of (seed, epoch, global sequence index), drawn
// with Philox, so every rank count, thread order and resumed run sees the same masks.
#pragma once

#include <cstdint>
#include <vector>

#include "meap/core/rng.hpp"

namespace meap {

struct MaskerConfig {
  double mask_ratio = 0.15;            // data.meap.mask_ratio, P in [0, 1); 0 = plain NTP
  int32_t mask_id = -1;                // [MASK] token id; required (>= 0) when P > 0
  bool keep_special_unmasked = false;  // data.meap.keep_special_unmasked: never mask BOS/EOS
  int32_t bos_id = -1, eos_id = -1;    // -1 = the tokenizer has none
  uint64_t seed = 0;                   // run.seed
};

class MeapMasker {
 public:
  // Validates the config (meap::Error naming data.meap.mask_ratio): P in [0, 1),
  // mask_id >= 0 when P > 0, mask_id distinct from BOS/EOS.
  explicit MeapMasker(MaskerConfig config);

  const MaskerConfig& config() const { return config_; }

  // round(P * T) (halves away from zero): the number of input positions masked in a sequence
  // of T = seq_len inputs. With keep_special_unmasked make_example masks
  // min(mask_count(T), number of non-BOS/EOS inputs).
  int64_t mask_count(int64_t seq_len) const;

  // tokens: seq_len + 1 clean token ids. Writes inputs (seq_len) = tokens[0, T) with the
  // masked positions set to mask_id, targets (seq_len) = tokens[1, T] (always clean), and
  // weights (seq_len) = 1. Refuses (meap::Error) tokens that already contain mask_id: the
  // shards and the tokenizer disagree. Allocates nothing in steady state; thread-safe.
  // epoch must be < 2^32, seq_len in [1, 2^31).
  void make_example(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                    uint64_t global_index, int32_t* inputs, int32_t* targets,
                    float* weights) const;

  // The input positions, ascending, that make_example masks for this sequence
  // (for tests and `meap inspect`; allocates).
  std::vector<int64_t> mask_positions(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                                      uint64_t global_index) const;

 private:
  template <class IsSelected, class Select>
  void sample(const int32_t* tokens, int64_t seq_len, uint64_t epoch, uint64_t global_index,
              IsSelected&& is_selected, Select&& select) const;
  void check_source(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                    uint64_t global_index) const;

  MaskerConfig config_;
  PhiloxKey key_;  // philox_key(seed) with the masker's domain tag folded in
};

}  // namespace meap
