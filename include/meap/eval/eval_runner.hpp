// run_eval: `meap eval`'s work -- load a checkpoint (or a run's latest), run the asked
// tasks (ppl, niah, mdqa, attn) and return the results document (schema in docs/eval.md).
// Deterministic given the options: every random choice comes from options.seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "meap/backend/device_choice.hpp"
#include "meap/eval/attention_analysis.hpp"
#include "meap/eval/mdqa.hpp"
#include "meap/eval/niah.hpp"

namespace meap {

struct EvalOptions {
  std::string checkpoint;          // checkpoint or run directory
  std::vector<std::string> tasks;  // ppl, niah, mdqa, attn
  std::string tokenizer;           // default CHECKPOINT/tokenizer.model
  DeviceChoice device = DeviceChoice::auto_;
  uint64_t seed = 1;
  int64_t batch_size = 8;          // sequences per forward
  bool progress = true;            // progress lines on stderr
  bool greedy = true;              // greedy generation scoring for niah and mdqa
  std::vector<std::string> text;   // shards (*.bin) or text files; default the run's data.val
  int64_t max_text_tokens = 0;     // read at most this many tokens of text (0 = all)
  int64_t ppl_seq_len = 0;         // 0 = max_seq_len
  NiahOptions niah;                // lengths empty = 4 lengths up to max_seq_len
  MdqaOptions mdqa;
  std::string mdqa_jsonl;          // lost-in-the-middle JSONL instead of the generator
  AttentionOptions attn;           // mask_ratio < 0 = the run's data.meap.mask_ratio (or 0.15)
  int64_t attn_span_items = 4;     // NIAH prompts for the span share
  std::string items_dir;           // when set, DIR/TASK-items.jsonl of the scored items
};

nlohmann::json run_eval(const EvalOptions& options);

// The readable summary `meap eval` prints: one block per task.
std::string results_table(const nlohmann::json& results);

}  // namespace meap
