// LanguageModel: the two questions an evaluation asks a model -- how likely is each of these
// continuations of a context, and what does greedy decoding continue it with. The scorers
// take this interface, so they are tested with predictors whose accuracy is known (an
// oracle, a uniform guesser) as well as run on a trained Llama (LlamaLanguageModel).
#pragma once

#include <cstdint>
#include <vector>

namespace meap {

struct ContinuationScore {
  double log_likelihood = 0;  // sum over the continuation's tokens of log p(token | prefix)
  bool greedy = false;        // every continuation token is the argmax at its position
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  // The longest context + continuation scored at once; longer ones keep their last tokens.
  virtual int64_t max_seq_len() const = 0;
  // One score per continuation, each after the same context (token ids).
  virtual std::vector<ContinuationScore> score(
      const std::vector<int32_t>& context,
      const std::vector<std::vector<int32_t>>& continuations) = 0;
  // Greedy continuation of context: at most max_new_tokens, ending early after stop_id.
  virtual std::vector<int32_t> generate_greedy(const std::vector<int32_t>& context,
                                               int64_t max_new_tokens, int32_t stop_id) = 0;
};

}  // namespace meap
