// Sampling from a trained Llama: greedy or temperature + top-k choice of the next token
// from one row of logits, and an autoregressive generate() loop. Draws come from Philox
// keyed by (seed, token index), so a given seed reproduces its continuation exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "meap/model/llama.hpp"

namespace meap {

struct SamplingOptions {
  bool greedy = false;         // argmax; temperature, top_k and seed are then unused
  double temperature = 0.8;    // logits are divided by it; 0 means greedy, < 0 is refused
  int64_t top_k = 40;          // sample among the k most likely tokens; 0 = whole vocabulary
  uint64_t seed = 1;           // Philox key; the token index is the counter
  int64_t max_new_tokens = 100;
};

// Throws meap::Error naming the option when a value is out of range.
void validate_sampling_options(const SamplingOptions& options);

// The next token from logits (vocab entries, host memory). `step` is the index of the token
// being drawn (the Philox counter): the same (seed, step, logits) always give the same id.
// banned_id (e.g. [MASK], which never is a training target) is never returned; -1 bans
// nothing. Non-finite logits count as -inf. Ties go to the lower id.
int32_t sample_next(const float* logits, int64_t vocab, const SamplingOptions& options,
                    uint64_t step, int32_t banned_id = -1);

// Called with each new token as soon as it is chosen (EOS included), for streaming.
using TokenCallback = std::function<void(int32_t token)>;

// Continues `context` (at least one token) one token at a time: a full forward_logits over
// the last model.max_seq_len() tokens each step (no KV cache: the models this runs are
// small), the last position's logits into sample_next with mask_id banned. Stops after
// options.max_new_tokens tokens or at eos_id. Returns the new tokens, ending with eos_id
// when the model ended the document. The model must be built with batch >= 1.
std::vector<int32_t> generate(Llama& model, const std::vector<int32_t>& context,
                              const SamplingOptions& options, int32_t eos_id, int32_t mask_id,
                              const TokenCallback& on_token = {});

}  // namespace meap
