// The `ppl` task: loss, perplexity and bits per byte of a token stream. The stream is cut
// into non-overlapping windows of seq_len inputs (window w: inputs [wT, wT + T), targets
// [wT + 1, wT + T + 1)), as the trainer's validation does, so `loss` compares with a run's
// val_loss. A partial last window reads the T inputs before its targets (lm-evaluation-
// harness's loglikelihood_rolling rule: both give the same sums on the same tokens). Bits per byte divide the summed loss (in bits) by the UTF-8 bytes the scored
// targets decode to, which does not depend on the tokenizer: runs with different
// tokenizers compare on it.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "meap/eval/progress.hpp"
#include "meap/eval/text_codec.hpp"
#include "meap/model/llama.hpp"

namespace meap {

struct PerplexityOptions {
  int64_t seq_len = 0;  // window length; 0 = the model's max_seq_len
};

struct PerplexityResult {
  int64_t tokens = 0;        // scored targets
  int64_t bytes = 0;         // UTF-8 bytes they decode to (control tokens: none)
  int64_t windows = 0;
  double loss = 0;           // mean negative log-likelihood per token, nats
  double perplexity = 0;     // exp(loss)
  double bits_per_byte = 0;  // loss * tokens / ln 2 / bytes
};

// stream needs at least 2 tokens. Windows run in batches of the model's max batch.
PerplexityResult evaluate_perplexity(Llama& model, const TextCodec& codec,
                                     const std::vector<int32_t>& stream,
                                     const PerplexityOptions& options,
                                     Progress* progress = nullptr);

nlohmann::json to_json(const PerplexityResult& r);

}  // namespace meap
