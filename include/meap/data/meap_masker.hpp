// MeapMasker: turns one clean training sequence into MEAP (inputs, targets, weights).
// The masked positions are a pure function of (seed, epoch, global sequence index), drawn
// with Philox (data.meap.sampling: per_sequence), or of (optimizer step, T) alone, drawn as
// the MEAP authors' released code does (authors_code), so every rank count, thread order
// and resumed run sees the same masks.
#pragma once

#include <cstdint>
#include <vector>

#include "meap/core/rng.hpp"
#include "meap/data/mask_sampling.hpp"

namespace meap {

struct MaskerConfig {
  double mask_ratio = 0.15;            // data.meap.mask_ratio, P in [0, 1); 0 = plain NTP
  int32_t mask_id = -1;                // [MASK] token id; required (>= 0) when P > 0
  bool keep_special_unmasked = false;  // data.meap.keep_special_unmasked: never mask BOS/EOS
  int32_t bos_id = -1, eos_id = -1;    // -1 = the tokenizer has none
  uint64_t seed = 0;                   // run.seed
  MaskSampling sampling = MaskSampling::per_sequence;  // data.meap.sampling
};

class MeapMasker {
 public:
  // Validates the config (meap::Error naming data.meap.mask_ratio): P in [0, 1),
  // mask_id >= 0 when P > 0, mask_id distinct from BOS/EOS.
  explicit MeapMasker(MaskerConfig config);

  const MaskerConfig& config() const { return config_; }

  // The number of input positions masked in a sequence of T = seq_len inputs:
  // per_sequence: round(P * T) (halves away from zero); with keep_special_unmasked
  // make_example masks min(mask_count(T), number of non-BOS/EOS inputs).
  // authors_code: max(1, int(P * T)) for P > 0 (0 for P = 0), as the released code; with
  // keep_special_unmasked the drawn positions holding BOS/EOS are left unmasked.
  int64_t mask_count(int64_t seq_len) const;

  // tokens: seq_len + 1 clean token ids. Writes inputs (seq_len) = tokens[0, T) with the
  // masked positions set to mask_id, targets (seq_len) = tokens[1, T] (always clean), and
  // weights (seq_len) = 1. Refuses (meap::Error) tokens that already contain mask_id: the
  // shards and the tokenizer disagree. Allocates nothing in steady state; thread-safe.
  // epoch must be < 2^32, seq_len in [1, 2^31) (authors_code with P > 0: seq_len >= 2).
  // step: the optimizer step the sequence is trained at, from 0 (TokenStreamer passes
  // epoch * batches_per_epoch + batch); authors_code keys the masks by it alone,
  // per_sequence ignores it.
  void make_example(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                    uint64_t global_index, int32_t* inputs, int32_t* targets,
                    float* weights, uint64_t step = 0) const;

  // The input positions, ascending, that make_example masks for this sequence
  // (for tests and `meap inspect`; allocates).
  std::vector<int64_t> mask_positions(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                                      uint64_t global_index, uint64_t step = 0) const;

  // authors_code: the positions `random.seed(50 + step % 51);
  // random.sample(range(0, T - 1), k)` returns, k = mask_count(T), in Python's order.
  // Computed once per (step % 51, T) and thread (the last pattern is cached).
  static std::vector<int64_t> authors_code_positions(uint64_t step, int64_t seq_len, int64_t k);

 private:
  template <class IsSelected, class Select>
  void sample(const int32_t* tokens, int64_t seq_len, uint64_t epoch, uint64_t global_index,
              uint64_t step, IsSelected&& is_selected, Select&& select) const;
  void check_source(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                    uint64_t global_index) const;

  MaskerConfig config_;
  PhiloxKey key_;  // philox_key(seed) with the masker's domain tag folded in
};

}  // namespace meap
