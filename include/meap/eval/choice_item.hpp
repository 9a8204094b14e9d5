// ChoiceItem: one evaluation question as text -- a context, candidate continuations, the
// gold one, and the answers a greedy continuation may start with -- plus how it becomes
// token ids. The rule is lm-evaluation-harness's, so `meap eval` and `lm_eval` score the
// same items identically: whitespace ending the context moves to the continuation, and
// the continuation's ids are encode(context + choice) after the first |encode(context)|.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "meap/eval/text_codec.hpp"

namespace meap {

struct ChoiceItem {
  std::string id;                    // unique in a task, e.g. "niah-L128-d0.50-s3"
  std::string context;               // the prompt text
  std::vector<std::string> choices;  // candidate continuations (with their leading space)
  int gold = 0;                      // index of the correct choice
  std::vector<std::string> answers;  // accepted greedy answers (the gold value, trimmed)
  nlohmann::json meta = nlohmann::json::object();  // depth, length, position, ...
};

struct EncodedItem {
  std::vector<int32_t> context;                // document_start_id, then the context's ids
  std::vector<std::vector<int32_t>> choices;   // one per choice, never empty
};

// Throws meap::Error naming the item when a choice encodes to no tokens.
EncodedItem encode_item(const ChoiceItem& item, const TextCodec& codec);

// One JSON object per line: id, context, choices, gold, answers, meta (the file a
// lm-evaluation-harness task reads; docs/eval.md).
void write_items_jsonl(const std::string& path, const std::vector<ChoiceItem>& items);

}  // namespace meap
