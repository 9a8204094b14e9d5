// evaluate_perplexity: mean loss over non-overlapping windows, and bits per byte.
#include "meap/eval/perplexity.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/error.hpp"

namespace meap {

PerplexityResult evaluate_perplexity(Llama& model, const TextCodec& codec,
                                     const std::vector<int32_t>& stream,
                                     const PerplexityOptions& options, Progress* progress) {
  const int64_t T = options.seq_len > 0 ? options.seq_len : model.max_seq_len();
  if (T > model.max_seq_len())
    fail("ppl window ", T, " exceeds the model's max_seq_len ", model.max_seq_len());
  const int64_t n_targets = static_cast<int64_t>(stream.size()) - 1;
  if (n_targets < 1) fail("ppl needs at least 2 tokens of text, got ", stream.size());
  const int32_t mask = codec.mask_id();
  if (mask >= 0 && std::find(stream.begin(), stream.end(), mask) != stream.end())
    fail("the ppl text holds [MASK] tokens: it was not tokenized with the run's tokenizer");

  PerplexityResult r;
  const int64_t full_windows = n_targets / T, tail = n_targets % T;
  const int64_t B = model.max_batch();
  std::vector<int32_t> inputs, targets;
  std::vector<float> weights;
  double nll = 0;
  // Windows [first, first + count) of length T; a partial last window instead keeps the
  // full T inputs before its targets (as far as the stream goes back) and scores only its
  // own `tail` targets -- lm-evaluation-harness's rolling-window rule, so both agree.
  const auto run = [&](int64_t first_window, int64_t count, int64_t len, int64_t scored) {
    inputs.resize(static_cast<size_t>(count * len));
    targets.resize(inputs.size());
    weights.assign(inputs.size(), 1.0f);
    for (int64_t b = 0; b < count; ++b) {
      const int64_t start = scored < len ? n_targets - len : (first_window + b) * T;
      std::copy_n(stream.begin() + start, len, inputs.begin() + b * len);
      std::copy_n(stream.begin() + start + 1, len, targets.begin() + b * len);
      std::fill_n(weights.begin() + b * len, len - scored, 0.0f);
    }
    // forward() returns the mean over the count * scored weighted tokens.
    nll += model.forward(inputs.data(), targets.data(), weights.data(), count, len) *
           static_cast<double>(count * scored);
    r.windows += count;
    if (progress) progress->advance(count * scored);
  };
  for (int64_t w = 0; w < full_windows; w += B) run(w, std::min(B, full_windows - w), T, T);
  if (tail > 0) {
    const int64_t len = std::min(T, n_targets);
    run(full_windows, 1, len, tail);
  }

  const std::vector<int32_t> scored(stream.begin() + 1, stream.end());
  r.tokens = n_targets;
  r.bytes = static_cast<int64_t>(codec.decode(scored).size());
  r.loss = nll / static_cast<double>(n_targets);
  r.perplexity = std::exp(r.loss);
  r.bits_per_byte = r.bytes > 0 ? nll / std::log(2.0) / static_cast<double>(r.bytes) : 0.0;
  return r;
}

nlohmann::json to_json(const PerplexityResult& r) {
  return {{"tokens", r.tokens},          {"bytes", r.bytes}, {"windows", r.windows},
          {"loss", r.loss},              {"perplexity", r.perplexity},
          {"bits_per_byte", r.bits_per_byte}};
}

}  // namespace meap
