#include "meap/model/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"

namespace meap {

namespace {

// Separates sampling draws from the other Philox streams (init, masks) that may share a seed.
constexpr uint32_t kSamplingStream = 0x53414d50u;  // "SAMP"

// Uniform in [0, 1) with 53 random bits: 24 bits (uniform_open01) would leave tokens of
// probability below ~6e-8 unreachable and bias the rest slightly.
double uniform01(uint64_t seed, uint64_t step) {
  const PhiloxCounter r = philox4x32(
      {static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), kSamplingStream, 0},
      philox_key(seed));
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 21) ^ (r[1] >> 11);
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);  // 2^-53
}

bool usable(const float* logits, int64_t id, int32_t banned_id) {
  return id != banned_id && std::isfinite(logits[id]);
}

}  // namespace

void validate_sampling_options(const SamplingOptions& o) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    fail("temperature ", o.temperature, " must be finite and >= 0 (0 = greedy)");
  if (o.top_k < 0) fail("top-k ", o.top_k, " must be >= 0 (0 = whole vocabulary)");
  if (o.max_new_tokens < 0) fail("max-new-tokens ", o.max_new_tokens, " must be >= 0");
}

int32_t sample_next(const float* logits, int64_t vocab, const SamplingOptions& options,
                    uint64_t step, int32_t banned_id) {
  validate_sampling_options(options);
  MEAP_CHECK(vocab > 0, "empty vocabulary");

  if (options.greedy || options.temperature == 0 || options.top_k == 1) {
    int64_t best = -1;
    for (int64_t i = 0; i < vocab; ++i)
      if (usable(logits, i, banned_id) && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) fail("no token can be chosen: every logit is non-finite or banned");
    return static_cast<int32_t>(best);
  }

  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    if (usable(logits, i, banned_id)) ids.push_back(static_cast<int32_t>(i));
  if (ids.empty()) fail("no token can be sampled: every logit is non-finite or banned");

  // A strict total order (ties by id) makes the kept set and the summation order, hence
  // the drawn token, independent of the standard library's sort internals.
  const auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (options.top_k > 0 && options.top_k < static_cast<int64_t>(ids.size())) {
    std::partial_sort(ids.begin(), ids.begin() + options.top_k, ids.end(), more_likely);
    ids.resize(static_cast<size_t>(options.top_k));
  }

  double max_logit = -INFINITY;
  for (int32_t id : ids) max_logit = std::max(max_logit, static_cast<double>(logits[id]));
  std::vector<double> weights(ids.size());
  double total = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    weights[j] = std::exp((logits[ids[j]] - max_logit) / options.temperature);
    total += weights[j];
  }
  const double target = uniform01(options.seed, step) * total;
  double cumulative = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    cumulative += weights[j];
    if (target < cumulative) return ids[j];
  }
  // Rounding can leave target == total; the last token with any weight takes it.
  for (size_t j = ids.size(); j-- > 0;)
    if (weights[j] > 0) return ids[j];
  return ids.front();
}

std::vector<int32_t> generate(Llama& model, const std::vector<int32_t>& context,
                              const SamplingOptions& options, int32_t eos_id, int32_t mask_id,
                              const TokenCallback& on_token) {
  validate_sampling_options(options);
  if (context.empty()) fail("generate needs at least one context token");
  const int64_t window = model.max_seq_len();
  const int64_t vocab = model.config().vocab_size;

  std::vector<int32_t> tokens = context;
  std::vector<int32_t> generated;
  std::vector<float> row(static_cast<size_t>(vocab));
  std::vector<double> row64;
  std::vector<uint16_t> row16;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    // The model attends over at most `window` positions; older tokens fall off the front.
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t start = std::max<int64_t>(0, n - window);
    const int64_t T = n - start;
    model.forward_logits(tokens.data() + start, 1, T);
    const Tensor last = model.logits().reshaped({T, vocab}).rows(T - 1, T);  // (1, V)
    if (last.dtype == DType::f32) {
      model.backend().copy_to_host(row.data(), last);
    } else if (last.dtype == DType::bf16) {  // a bf16 model's logits: widened exactly
      row16.resize(row.size());
      model.backend().copy_to_host(row16.data(), last);
      std::transform(row16.begin(), row16.end(), row.begin(), bf16_to_f32);
    } else {
      row64.resize(row.size());
      model.backend().copy_to_host(row64.data(), last);
      std::transform(row64.begin(), row64.end(), row.begin(),
                     [](double x) { return static_cast<float>(x); });
    }
    const int32_t next = sample_next(row.data(), vocab, options, static_cast<uint64_t>(i), mask_id);
    tokens.push_back(next);
    generated.push_back(next);
    if (on_token) on_token(next);
    if (next == eos_id) break;
  }
  return generated;
}

}  // namespace meap
