// The `attn` task: the paper's attention analysis. For sequences of given text, once with
// a fraction P of the inputs replaced by [MASK] (as in training) and once clean:
//  - the mean attention the masked positions receive, vs the same positions in the clean
//    run (received_change = masked / clean - 1; the paper reports -53% for MEAP);
//  - the variance of attention over the unmasked positions, masked input vs clean
//    (variance_change; the paper: +7.8%);
// and for NIAH prompts, the share of attention the question's tokens give the needle
// (span_share; the paper: answer span 9.4% -> 34.5%), beside what uniform attention gives.
// Per layer and the mean over layers.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "meap/eval/choice_item.hpp"
#include "meap/eval/progress.hpp"
#include "meap/eval/text_codec.hpp"
#include "meap/model/llama.hpp"

namespace meap {

struct AttentionOptions {
  int64_t sequences = 4;    // sequences of the text analysed
  int64_t seq_len = 0;      // their length; 0 = the model's max_seq_len
  double mask_ratio = 0.15;  // P
  uint64_t seed = 1;        // offsets in the text and the masks
};

struct AttentionLayerStats {
  double received_masked = 0, received_clean = 0;    // at the masked positions
  double variance_masked = 0, variance_clean = 0;    // over the unmasked positions
  double span_share = 0, span_share_uniform = 0;     // NIAH needle, question queries
};

struct AttentionReport {
  std::vector<AttentionLayerStats> layers;
  AttentionLayerStats overall;  // mean over layers
  int64_t sequences = 0, seq_len = 0, masked_positions = 0, span_items = 0;
};

// stream: the text (>= seq_len + 1 tokens). span_items: NIAH items (meta needle_token,
// needle_tokens, question_token); none skips the span statistic.
AttentionReport analyze_attention(Llama& model, const TextCodec& codec,
                                  const std::vector<int32_t>& stream,
                                  const std::vector<ChoiceItem>& span_items,
                                  const AttentionOptions& options, Progress* progress = nullptr);

nlohmann::json to_json(const AttentionReport& r, double mask_ratio);

}  // namespace meap
