// SftConfig: the `sft:` section of a run config -- the SFT shards of a fine-tuning run
// (`meap prepare --sft`) and how their samples become documents (SftOptions, docs/sft.md) --
// with its keys and its own range checks. A run whose sft.train is set is an SFT run.
#pragma once

#include <cstdint>
#include <string>

#include "meap/core/config_schema.hpp"
#include "meap/data/sft_builder.hpp"

namespace meap {

struct SftConfig {
  std::string train;  // glob of SFT training shards; set: this is an SFT run
  std::string val;    // glob of SFT validation shards: held-out answers, NTP layout, no masks
  double mask_ratio = 0.1;         // P: share of an answer masked in its copy; 0 = NTP-SFT
  int64_t min_answer_tokens = 50;  // answers of at most this many tokens get NTP-SFT
  SftLayout layout = SftLayout::concat;
  SftMaskScope mask_scope = SftMaskScope::answer;
  bool operator==(const SftConfig&) const = default;
};

ConfigKeys<SftConfig> sft_config_keys();

// Range checks of the section alone, naming the key ("sft.mask_ratio must be ...").
void validate(const SftConfig& sft);

// The SftOptions of the training rows (masks keyed by `seed`, run.seed). Validation reads
// the same with mask_ratio 0: held-out answers in the NTP layout.
SftOptions sft_options(const SftConfig& sft, uint64_t seed, bool train);

}  // namespace meap
