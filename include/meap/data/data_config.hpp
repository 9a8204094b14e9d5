// DataConfig: the `data:` section of a run config -- where the shards and the tokenizer are,
// the sequence length, and MEAP's masking -- with its keys and its own range checks.
#pragma once

#include <cstdint>
#include <string>

#include "meap/core/config_schema.hpp"
#include "meap/data/mask_sampling.hpp"

namespace meap {

struct MeapConfig {
  double mask_ratio = 0.15;            // fraction of input tokens replaced by [MASK]; 0 = NTP
  bool keep_special_unmasked = false;  // never mask BOS/EOS
  MaskSampling sampling = MaskSampling::per_sequence;  // how positions are drawn (mask_sampling.hpp)
  bool operator==(const MeapConfig&) const = default;
};

struct DataConfig {
  std::string train;      // glob of training shards
  std::string val;        // glob of validation shards
  std::string tokenizer;  // SentencePiece model
  int64_t seq_len = 256;  // tokens per training sequence (T)
  // Attention stops at each EOS: a sequence's documents do not see each other and their
  // RoPE positions restart at 0 (TokenStreamer fills TokenBatch::segment_ids, positions).
  bool document_mask = false;
  MeapConfig meap;
  bool operator==(const DataConfig&) const = default;
};

ConfigKeys<DataConfig> data_config_keys();

// Range checks of the section alone, naming the key ("data.seq_len must be ...").
void validate(const DataConfig& data);

}  // namespace meap
