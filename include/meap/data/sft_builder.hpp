// SftBuilder: turns one SFT sample (tokens and roles, `[BOS] prompt answer [EOS]`) into the
// documents a packed row holds: NTP-SFT, or MEAP-SFT (the sample followed by a copy with
// round(P * answer_len) answer tokens masked). Masks are a pure function of (seed, epoch,
// sample index) drawn with Philox: fresh per epoch, the same on any rank count and after a
// resume. The exact sequences are in docs/sft.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meap/core/rng.hpp"

namespace meap {

enum class SftLayout {
  concat,    // the paper: original and masked copy are one causal document
  separate,  // the authors' released code: the masked copy is a document of its own
};
enum class SftMaskScope {
  answer,  // mask among the copy's answer tokens
  all,     // mask among all of the copy's tokens but its first (BOS)
};

// Parses "concat" / "separate" and "answer" / "all"; meap::Error naming `key` otherwise.
SftLayout parse_sft_layout(const std::string& text, const std::string& key = "sft.layout");
SftMaskScope parse_sft_mask_scope(const std::string& text,
                                  const std::string& key = "sft.mask_scope");
const char* sft_layout_name(SftLayout layout);
const char* sft_mask_scope_name(SftMaskScope scope);
// The names of enum_names.hpp, so that sft.layout and sft.mask_scope are config choices.
std::span<const std::string_view> enum_names(SftLayout);
std::span<const std::string_view> enum_names(SftMaskScope);

struct SftOptions {
  double mask_ratio = 0.1;          // P in [0, 1); 0 = NTP-SFT for every sample
  int64_t min_answer_tokens = 50;   // answers of at most this many tokens get NTP-SFT
  SftLayout layout = SftLayout::concat;
  SftMaskScope mask_scope = SftMaskScope::answer;
  uint64_t seed = 0;                // run.seed
};

// What one sample becomes, known from its length and answer count alone (no tokens read).
struct SftShape {
  bool meap = false;          // a masked copy follows the original
  int n_documents = 1;        // 2 only for MEAP in the separate layout (original, copy)
  int64_t length[2] = {0, 0};  // input positions of each document
  int64_t mask_count = 0;     // [MASK]s in the copy (0 without one)
};

// One document of a packed row: `length` positions of (input, target, loss weight).
struct SftDocument {
  std::vector<int32_t> inputs, targets;
  std::vector<float> weights;
};

class SftBuilder {
 public:
  // Refuses (meap::Error naming the sft.* key) P outside [0, 1), min_answer_tokens < 0, and
  // P > 0 without a [MASK] id (mask_id < 0).
  SftBuilder(SftOptions options, int32_t mask_id);

  const SftOptions& options() const { return options_; }

  // Masks in the copy: round(P * n_eligible) (halves away from zero), n_eligible = the
  // answer tokens (scope answer) or n_tokens - 1 (scope all).
  int64_t mask_count(int64_t n_tokens, int64_t answer_tokens) const;
  // MEAP when P > 0, answer_tokens > min_answer_tokens and mask_count >= 1; otherwise the
  // NTP-SFT document alone. A document of n tokens has n - 1 positions.
  SftShape shape(int64_t n_tokens, int64_t answer_tokens) const;

  // Writes document `part` (< shape.n_documents) of the sample: shape.length[part]
  // positions into inputs, targets (clean) and weights. tokens/roles: n_tokens each (roles
  // as SftRole values). Refuses tokens that already hold the [MASK] id. Thread-safe;
  // allocates only thread-local scratch that grows to the longest sample.
  void build(const int32_t* tokens, const uint8_t* roles, int64_t n_tokens, uint64_t epoch,
             uint64_t sample_index, int part, int32_t* inputs, int32_t* targets,
             float* weights) const;

  // Every document of the sample (for tests, docs and inspection; allocates).
  std::vector<SftDocument> documents(const int32_t* tokens, const uint8_t* roles,
                                     int64_t n_tokens, uint64_t epoch,
                                     uint64_t sample_index) const;

  // The copy's masked token positions, ascending, in [0, n_tokens) (empty without a copy).
  std::vector<int64_t> mask_positions(const uint8_t* roles, int64_t n_tokens, uint64_t epoch,
                                      uint64_t sample_index) const;

 private:
  // Marks the copy's masked positions in `masked` (n_tokens bytes, zeroed here).
  void draw_masks(const uint8_t* roles, int64_t n_tokens, int64_t answer_tokens,
                  int64_t k, uint64_t epoch, uint64_t sample_index, uint8_t* masked) const;

  SftOptions options_;
  int32_t mask_id_;
  PhiloxKey key_;  // philox_key(seed) with the SFT mask domain folded in
};

}  // namespace meap
