// LlamaLanguageModel: a LanguageModel over a Llama on any backend. Continuations of one
// context are scored in batches of up to the model's max batch: each sequence is
// (context + continuation) cut to its last max_seq_len + 1 tokens, as lm-evaluation-harness
// does, padded at the end (causal attention: padding never changes earlier positions).
#pragma once

#include "meap/eval/language_model.hpp"
#include "meap/model/llama.hpp"

namespace meap {

class LlamaLanguageModel : public LanguageModel {
 public:
  // mask_id is never generated (-1: none banned). The model must outlive this object.
  LlamaLanguageModel(Llama& model, int32_t mask_id) : model_(model), mask_id_(mask_id) {}
  int64_t max_seq_len() const override { return model_.max_seq_len(); }
  std::vector<ContinuationScore> score(
      const std::vector<int32_t>& context,
      const std::vector<std::vector<int32_t>>& continuations) override;
  std::vector<int32_t> generate_greedy(const std::vector<int32_t>& context,
                                       int64_t max_new_tokens, int32_t stop_id) override;

 private:
  Llama& model_;
  int32_t mask_id_;
  std::vector<float> row_;  // (V) one row of logits on the host
};

}  // namespace meap
