#include "meap/data/meap_masker.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "meap/core/error.hpp"
#include "meap/data/python_random.hpp"

namespace meap {

namespace {

// Folded into the key's high word ("MEAP" in ASCII) so the mask stream never shares a key with
// the weight-init stream (philox_normal under philox_key(run.seed)) of the same run.
constexpr uint32_t kMaskDomain = 0x4D454150u;

void check_call(int64_t seq_len, uint64_t epoch) {
  if (seq_len <= 0 || seq_len > INT32_MAX - 1)
    fail("MEAP masker: seq_len must be in [1, 2^31 - 1), got ", seq_len);
  if (epoch > UINT32_MAX) fail("MEAP masker: epoch must be < 2^32, got ", epoch);
}

}  // namespace

MeapMasker::MeapMasker(MaskerConfig config) : config_(config), key_(philox_key(config.seed)) {
  key_[1] ^= kMaskDomain;
  const double p = config_.mask_ratio;
  if (!(p >= 0.0 && p < 1.0))  // also refuses NaN
    fail("data.meap.mask_ratio must be in [0, 1) (0 = plain next-token prediction), got ", p);
  if (p > 0.0 && config_.mask_id < 0)
    fail("data.meap.mask_ratio = ", p,
         " needs a [MASK] token, but the tokenizer/shards define none (mask_id = ",
         config_.mask_id,
         "); use a tokenizer with a [MASK] token or data.meap.mask_ratio=0 for plain "
         "next-token prediction");
  if (config_.mask_id >= 0 &&
      (config_.mask_id == config_.bos_id || config_.mask_id == config_.eos_id))
    fail("data.meap.mask_ratio: the [MASK] id ", config_.mask_id,
         " is also the BOS or EOS id (bos = ", config_.bos_id, ", eos = ", config_.eos_id,
         "); the tokenizer needs a dedicated [MASK] token");
}

int64_t MeapMasker::mask_count(int64_t seq_len) const {
  const double pt = config_.mask_ratio * static_cast<double>(seq_len);
  if (config_.sampling == MaskSampling::authors_code)  // max(1, int(P * T)): truncation
    return config_.mask_ratio > 0.0 ? std::max<int64_t>(1, static_cast<int64_t>(pt)) : 0;
  return static_cast<int64_t>(std::llround(pt));
}

std::vector<int64_t> MeapMasker::authors_code_positions(uint64_t step, int64_t seq_len,
                                                        int64_t k) {
  if (seq_len < 2)
    fail("data.meap.sampling: authors_code draws from range(0, T - 1) and needs data.seq_len "
         ">= 2, got ", seq_len);
  PythonRandom rng(50 + step % 51);
  return rng.sample_range(seq_len - 1, k);
}

// Floyd's sampling (Bentley & Floyd, CACM 1987): a uniform k-subset of n eligible positions
// from exactly k bounded draws, j = n-k .. n-1: t uniform in [0, j]; take t, or j if t is
// already taken. Membership is asked of the caller (make_example reads its own inputs, which
// hold mask_id exactly at the chosen positions), so the only scratch is the eligible list.
template <class IsSelected, class Select>
void MeapMasker::sample(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                        uint64_t global_index, uint64_t step, IsSelected&& is_selected,
                        Select&& select) const {
  int64_t k = mask_count(seq_len);
  if (k == 0) return;
  const int32_t bos = config_.bos_id, eos = config_.eos_id;
  if (config_.sampling == MaskSampling::authors_code) {
    // One pattern per (step % 51, T): every sequence of a step shares it, so each thread
    // keeps the last one (a step's sequences come one after another).
    struct Cached {
      uint64_t seed = UINT64_MAX;
      int64_t seq_len = -1, k = -1;
      std::vector<int64_t> positions;
    };
    thread_local Cached cache;
    const uint64_t seed = step % 51;
    if (cache.seed != seed || cache.seq_len != seq_len || cache.k != k) {
      cache.positions = authors_code_positions(step, seq_len, k);
      cache.seed = seed;
      cache.seq_len = seq_len;
      cache.k = k;
    }
    for (const int64_t pos : cache.positions) {
      const int32_t tok = tokens[pos];
      if (config_.keep_special_unmasked && ((bos >= 0 && tok == bos) || (eos >= 0 && tok == eos)))
        continue;
      select(pos);
    }
    return;
  }
  int64_t n = seq_len;
  const int32_t* eligible = nullptr;  // (n) input positions that may be masked; null = all
  if (config_.keep_special_unmasked && (bos >= 0 || eos >= 0)) {
    // Grows to the longest sequence seen on this thread, then is reused.
    thread_local std::vector<int32_t> scratch;
    if (static_cast<int64_t>(scratch.size()) < seq_len) scratch.resize(seq_len);
    n = 0;
    for (int64_t t = 0; t < seq_len; ++t) {
      const int32_t tok = tokens[t];
      scratch[n] = static_cast<int32_t>(t);
      n += (tok != bos || bos < 0) && (tok != eos || eos < 0);
    }
    eligible = scratch.data();
    k = std::min(k, n);
  }
  PhiloxWords words(key_, static_cast<uint32_t>(epoch), global_index);
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = words.below(static_cast<uint32_t>(j + 1));
    int64_t pos = eligible ? eligible[t] : t;
    if (is_selected(pos)) pos = eligible ? eligible[j] : j;
    select(pos);
  }
}

void MeapMasker::check_source(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                              uint64_t global_index) const {
  const int32_t m = config_.mask_id;
  if (m < 0) return;
  uint32_t found = 0;
  for (int64_t i = 0; i <= seq_len; ++i) found |= static_cast<uint32_t>(tokens[i] == m);
  if (!found) return;
  const int64_t at = std::find(tokens, tokens + seq_len + 1, m) - tokens;
  fail("MEAP masker: sequence ", global_index, " (epoch ", epoch, ") already contains the [MASK] id ",
       m, " at token ", at, " of ", seq_len + 1,
       "; the shards must hold clean text -- re-run `meap prepare`, or check that the shards "
       "and the tokenizer agree on the [MASK] id");
}

void MeapMasker::make_example(const int32_t* tokens, int64_t seq_len, uint64_t epoch,
                              uint64_t global_index, int32_t* inputs, int32_t* targets,
                              float* weights, uint64_t step) const {
  check_call(seq_len, epoch);
  check_source(tokens, seq_len, epoch, global_index);
  const size_t bytes = static_cast<size_t>(seq_len) * sizeof(int32_t);
  std::memcpy(inputs, tokens, bytes);
  std::memcpy(targets, tokens + 1, bytes);
  std::fill(weights, weights + seq_len, 1.0f);
  const int32_t m = config_.mask_id;
  sample(
      tokens, seq_len, epoch, global_index, step, [&](int64_t p) { return inputs[p] == m; },
      [&](int64_t p) { inputs[p] = m; });
}

std::vector<int64_t> MeapMasker::mask_positions(const int32_t* tokens, int64_t seq_len,
                                                uint64_t epoch, uint64_t global_index,
                                                uint64_t step) const {
  check_call(seq_len, epoch);
  check_source(tokens, seq_len, epoch, global_index);
  std::vector<uint8_t> taken(static_cast<size_t>(seq_len), 0);
  sample(
      tokens, seq_len, epoch, global_index, step, [&](int64_t p) { return taken[p] != 0; },
      [&](int64_t p) { taken[p] = 1; });
  std::vector<int64_t> positions;
  for (int64_t p = 0; p < seq_len; ++p)
    if (taken[p]) positions.push_back(p);
  return positions;
}

}  // namespace meap
