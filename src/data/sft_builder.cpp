#include "meap/data/sft_builder.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/error.hpp"
#include "meap/data/sft_shard.hpp"

namespace meap {

namespace {

// Folded into the key's high word ("SFTM") so SFT masks never share a stream with the
// pre-training masks, the shuffle or the weight init of the same seed.
constexpr uint32_t kSftMaskDomain = 0x5346544Du;

constexpr uint8_t kAnswer = static_cast<uint8_t>(SftRole::answer);

int64_t count_answers(const uint8_t* roles, int64_t n) {
  int64_t a = 0;
  for (int64_t i = 0; i < n; ++i) a += roles[i] == kAnswer;
  return a;
}

}  // namespace

SftLayout parse_sft_layout(const std::string& text, const std::string& key) {
  if (text == "concat") return SftLayout::concat;
  if (text == "separate") return SftLayout::separate;
  fail(key, " must be concat or separate, got '", text, "'");
}

SftMaskScope parse_sft_mask_scope(const std::string& text, const std::string& key) {
  if (text == "answer") return SftMaskScope::answer;
  if (text == "all") return SftMaskScope::all;
  fail(key, " must be answer or all, got '", text, "'");
}

const char* sft_layout_name(SftLayout layout) {
  return layout == SftLayout::concat ? "concat" : "separate";
}

const char* sft_mask_scope_name(SftMaskScope scope) {
  return scope == SftMaskScope::answer ? "answer" : "all";
}

std::span<const std::string_view> enum_names(SftLayout) {
  static constexpr std::string_view kNames[] = {"concat", "separate"};
  return kNames;
}

std::span<const std::string_view> enum_names(SftMaskScope) {
  static constexpr std::string_view kNames[] = {"answer", "all"};
  return kNames;
}

SftBuilder::SftBuilder(SftOptions options, int32_t mask_id)
    : options_(options), mask_id_(mask_id), key_(philox_key(options.seed)) {
  key_[1] ^= kSftMaskDomain;
  const double p = options_.mask_ratio;
  if (!(p >= 0.0 && p < 1.0))
    fail("sft.mask_ratio must be in [0, 1) (0 = plain NTP-SFT), got ", p);
  if (options_.min_answer_tokens < 0)
    fail("sft.min_answer_tokens must be >= 0, got ", options_.min_answer_tokens);
  if (p > 0.0 && mask_id_ < 0)
    fail("sft.mask_ratio = ", p, " needs a [MASK] token, but the SFT shards define none; use a "
         "tokenizer with [MASK] or sft.mask_ratio=0 for NTP-SFT");
}

int64_t SftBuilder::mask_count(int64_t n_tokens, int64_t answer_tokens) const {
  const int64_t eligible =
      options_.mask_scope == SftMaskScope::answer ? answer_tokens : n_tokens - 1;
  return static_cast<int64_t>(std::llround(options_.mask_ratio * static_cast<double>(eligible)));
}

SftShape SftBuilder::shape(int64_t n_tokens, int64_t answer_tokens) const {
  SftShape s;
  const int64_t k = options_.mask_ratio > 0.0 ? mask_count(n_tokens, answer_tokens) : 0;
  s.meap = answer_tokens > options_.min_answer_tokens && k >= 1;
  if (!s.meap) {
    s.length[0] = n_tokens - 1;
    return s;
  }
  s.mask_count = k;
  if (options_.layout == SftLayout::concat) {
    s.length[0] = 2 * n_tokens - 1;
  } else {
    s.n_documents = 2;
    s.length[0] = s.length[1] = n_tokens - 1;
  }
  return s;
}

// Floyd's sampling (Bentley & Floyd, CACM 1987): a uniform k-subset of the n eligible
// positions from exactly k bounded draws, j = n-k .. n-1: t uniform in [0, j]; take
// eligible[t], or eligible[j] if that one is already taken.
void SftBuilder::draw_masks(const uint8_t* roles, int64_t n_tokens, int64_t answer_tokens,
                            int64_t k, uint64_t epoch, uint64_t sample_index,
                            uint8_t* masked) const {
  std::fill(masked, masked + n_tokens, uint8_t{0});
  thread_local std::vector<int32_t> eligible;
  eligible.clear();
  if (options_.mask_scope == SftMaskScope::answer) {
    eligible.reserve(answer_tokens);
    for (int64_t i = 0; i < n_tokens; ++i)
      if (roles[i] == kAnswer) eligible.push_back(static_cast<int32_t>(i));
  } else {
    for (int64_t i = 1; i < n_tokens; ++i) eligible.push_back(static_cast<int32_t>(i));
  }
  const int64_t n = static_cast<int64_t>(eligible.size());
  MEAP_CHECK(k >= 1 && k <= n, "mask count ", k, " of ", n, " eligible tokens");
  PhiloxWords words(key_, static_cast<uint32_t>(epoch), sample_index);
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = words.below(static_cast<uint32_t>(j + 1));
    int32_t pos = eligible[t];
    if (masked[pos]) pos = eligible[j];
    masked[pos] = 1;
  }
}

void SftBuilder::build(const int32_t* tokens, const uint8_t* roles, int64_t n_tokens,
                       uint64_t epoch, uint64_t sample_index, int part, int32_t* inputs,
                       int32_t* targets, float* weights) const {
  const int64_t n = n_tokens;
  if (n < 2 || n > INT32_MAX) fail("SFT sample ", sample_index, " has ", n, " tokens");
  if (epoch > UINT32_MAX) fail("SFT builder: epoch must be < 2^32, got ", epoch);
  if (mask_id_ >= 0)
    for (int64_t i = 0; i < n; ++i)
      if (tokens[i] == mask_id_)
        fail("SFT sample ", sample_index, " already contains the [MASK] id ", mask_id_,
             " at token ", i, "; the shards and the tokenizer disagree on [MASK] (re-run "
             "meap prepare --sft)");
  const int64_t answers = count_answers(roles, n);
  const SftShape s = shape(n, answers);
  MEAP_CHECK(part >= 0 && part < s.n_documents, "document ", part, " of ", s.n_documents);

  if (!s.meap || (options_.layout == SftLayout::separate && part == 0)) {
    // NTP-SFT: position p reads token p and predicts token p + 1, trained on answers + EOS.
    for (int64_t p = 0; p < n - 1; ++p) {
      inputs[p] = tokens[p];
      targets[p] = tokens[p + 1];
      weights[p] = sft_role_trained(roles[p + 1]) ? 1.0f : 0.0f;
    }
    return;
  }

  thread_local std::vector<uint8_t> masked;
  masked.resize(n);
  draw_masks(roles, n, answers, s.mask_count, epoch, sample_index, masked.data());
  if (options_.layout == SftLayout::separate) {
    // The copy alone: a masked token's clean value is the target of the position before it.
    for (int64_t p = 0; p < n - 1; ++p) {
      inputs[p] = masked[p] ? mask_id_ : tokens[p];
      targets[p] = tokens[p + 1];
      weights[p] = masked[p + 1] ? 1.0f : 0.0f;
    }
    return;
  }
  // concat: z = original ++ copy (2n tokens), 2n - 1 positions. The original is trained as
  // NTP-SFT; in the copy only the positions just before a [MASK] carry loss.
  for (int64_t p = 0; p < 2 * n - 1; ++p) {
    const int64_t i = p < n ? p : p - n;  // token index inside original / copy
    inputs[p] = p >= n && masked[i] ? mask_id_ : tokens[i];
    const int64_t q = p + 1;  // the target's index in z
    const int64_t j = q < n ? q : q - n;
    targets[p] = tokens[j];
    weights[p] = (q < n ? sft_role_trained(roles[j]) : masked[j] != 0) ? 1.0f : 0.0f;
  }
}

std::vector<SftDocument> SftBuilder::documents(const int32_t* tokens, const uint8_t* roles,
                                               int64_t n_tokens, uint64_t epoch,
                                               uint64_t sample_index) const {
  const SftShape s = shape(n_tokens, count_answers(roles, n_tokens));
  std::vector<SftDocument> docs(s.n_documents);
  for (int d = 0; d < s.n_documents; ++d) {
    docs[d].inputs.resize(s.length[d]);
    docs[d].targets.resize(s.length[d]);
    docs[d].weights.resize(s.length[d]);
    build(tokens, roles, n_tokens, epoch, sample_index, d, docs[d].inputs.data(),
          docs[d].targets.data(), docs[d].weights.data());
  }
  return docs;
}

std::vector<int64_t> SftBuilder::mask_positions(const uint8_t* roles, int64_t n_tokens,
                                                uint64_t epoch, uint64_t sample_index) const {
  const int64_t answers = count_answers(roles, n_tokens);
  const SftShape s = shape(n_tokens, answers);
  std::vector<int64_t> out;
  if (!s.meap) return out;
  std::vector<uint8_t> masked(n_tokens);
  draw_masks(roles, n_tokens, answers, s.mask_count, epoch, sample_index, masked.data());
  for (int64_t i = 0; i < n_tokens; ++i)
    if (masked[i]) out.push_back(i);
  return out;
}

}  // namespace meap
