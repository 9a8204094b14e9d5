// MeapMasker: exact mask counts, masks that depend only on (seed, epoch, global index)
// whatever the order, thread or rank slice that computes them, clean targets, the
// keep_special_unmasked rule, refusal of bad sources and configs, and uniform positions.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <thread>
#include <vector>

#include "meap/core/error.hpp"
#include "meap/data/meap_masker.hpp"

using Catch::Matchers::Contains;
using meap::MaskerConfig;
using meap::MeapMasker;

namespace {

constexpr int32_t kMask = 3, kBos = 1, kEos = 2;

MaskerConfig make_config(double ratio, uint64_t seed = 1234) {
  MaskerConfig c;
  c.mask_ratio = ratio;
  c.mask_id = kMask;
  c.bos_id = kBos;
  c.eos_id = kEos;
  c.seed = seed;
  return c;
}

// seq_len + 1 clean tokens in [10, 1000): never a special id unless a test puts one there.
std::vector<int32_t> clean_tokens(int64_t seq_len, uint32_t salt = 0) {
  std::vector<int32_t> t(seq_len + 1);
  for (int64_t i = 0; i <= seq_len; ++i)
    t[i] = 10 + static_cast<int32_t>((i * 7919 + salt * 104729 + 13) % 990);
  return t;
}

struct Example {
  std::vector<int32_t> inputs, targets;
  std::vector<float> weights;
};

Example run(const MeapMasker& m, const std::vector<int32_t>& tokens, uint64_t epoch,
            uint64_t index) {
  const int64_t T = static_cast<int64_t>(tokens.size()) - 1;
  Example e{std::vector<int32_t>(T, -7), std::vector<int32_t>(T, -7), std::vector<float>(T, -7.f)};
  m.make_example(tokens.data(), T, epoch, index, e.inputs.data(), e.targets.data(),
                 e.weights.data());
  return e;
}

// Positions where make_example wrote the mask id, ascending.
std::vector<int64_t> masked_in(const std::vector<int32_t>& inputs) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i] == kMask) out.push_back(static_cast<int64_t>(i));
  return out;
}

}  // namespace

TEST_CASE("mask count is round(P*T), halves away from zero", "[masker]") {
  struct Case {
    double ratio;
    int64_t seq_len, expected;
  };
  // Ties on exactly representable products, ties of P = 0.15 with T = 10, 30, 50, 70, and
  // ordinary values.
  const std::vector<Case> cases = {
      {0.25, 2, 1},    {0.25, 6, 2},     {0.25, 10, 3},    {0.125, 4, 1},   {0.125, 12, 2},
      {0.375, 4, 2},   {0.15, 10, 2},    {0.15, 30, 5},    {0.15, 50, 8},   {0.15, 70, 11},
      {0.15, 1, 0},    {0.15, 3, 0},     {0.15, 4, 1},     {0.15, 256, 38}, {0.15, 2048, 307},
      {0.15, 1000, 150}, {0.1, 2048, 205}, {0.9, 1, 1},    {0.9, 7, 6},     {0.5, 255, 128},
      {0.0, 2048, 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.ratio, c.seq_len);
    MeapMasker m(make_config(c.ratio));
    CHECK(m.mask_count(c.seq_len) == c.expected);
    for (uint64_t index = 0; index < 50; ++index) {
      const auto tokens = clean_tokens(c.seq_len, static_cast<uint32_t>(index));
      const Example e = run(m, tokens, 0, index);
      const auto from_inputs = masked_in(e.inputs);
      REQUIRE(static_cast<int64_t>(from_inputs.size()) == c.expected);
      REQUIRE(m.mask_positions(tokens.data(), c.seq_len, 0, index) == from_inputs);
    }
  }
}

TEST_CASE("masks depend only on (seed, epoch, index): order, rank slice and thread agree",
          "[masker]") {
  const int64_t T = 128, N = 64;
  const uint64_t epoch = 3;
  std::vector<std::vector<int32_t>> tokens(N);
  for (int64_t i = 0; i < N; ++i) tokens[i] = clean_tokens(T, static_cast<uint32_t>(i % 5));

  const MeapMasker reference(make_config(0.15, 99));
  std::vector<std::vector<int32_t>> in_order(N);
  for (int64_t i = 0; i < N; ++i) in_order[i] = run(reference, tokens[i], epoch, i).inputs;

  SECTION("reversed order") {
    std::vector<std::vector<int32_t>> got(N);
    for (int64_t i = N - 1; i >= 0; --i) got[i] = run(reference, tokens[i], epoch, i).inputs;
    CHECK(got == in_order);
  }
  SECTION("rank slices r::world, one masker per rank") {
    for (int world : {2, 4, 3}) {
      CAPTURE(world);
      std::vector<std::vector<int32_t>> got(N);
      for (int r = 0; r < world; ++r) {
        const MeapMasker rank_masker(make_config(0.15, 99));
        for (int64_t i = r; i < N; i += world) got[i] = run(rank_masker, tokens[i], epoch, i).inputs;
      }
      CHECK(got == in_order);
    }
  }
  SECTION("four threads, interleaved, with the same masker") {
    std::vector<std::vector<int32_t>> got(N);
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w)
      threads.emplace_back([&, w] {
        for (int64_t i = N - 1 - w; i >= 0; i -= 4) got[i] = run(reference, tokens[i], epoch, i).inputs;
      });
    for (auto& t : threads) t.join();
    CHECK(got == in_order);
  }
  SECTION("interleaving other sequence lengths and keep_special calls changes nothing") {
    MaskerConfig special = make_config(0.15, 99);
    special.keep_special_unmasked = true;
    const MeapMasker other(special);
    std::vector<std::vector<int32_t>> got(N);
    for (int64_t i = 0; i < N; ++i) {
      run(other, clean_tokens(2 * T + i), epoch, i);  // grows the thread's scratch
      got[i] = run(reference, tokens[i], epoch, i).inputs;
    }
    CHECK(got == in_order);
  }
}

TEST_CASE("different indices, epochs and seeds give different masks", "[masker]") {
  const int64_t T = 256;
  const auto tokens = clean_tokens(T);
  const MeapMasker m(make_config(0.15, 7));
  std::set<std::vector<int64_t>> seen;
  for (uint64_t index = 0; index < 300; ++index)
    seen.insert(m.mask_positions(tokens.data(), T, 0, index));
  CHECK(seen.size() == 300);  // a repeat among C(256, 38) subsets would mean a broken stream

  // The high 32 bits of the index and the epoch both reach the counter.
  const uint64_t far = uint64_t{1} << 32;
  CHECK(m.mask_positions(tokens.data(), T, 0, far) != m.mask_positions(tokens.data(), T, 0, 0));
  CHECK(m.mask_positions(tokens.data(), T, 0, far + 5) !=
        m.mask_positions(tokens.data(), T, 0, 5));
  for (uint64_t index = 0; index < 20; ++index) {
    const auto e0 = m.mask_positions(tokens.data(), T, 0, index);
    CHECK(m.mask_positions(tokens.data(), T, 1, index) != e0);
    CHECK(m.mask_positions(tokens.data(), T, 0xFFFFFFFFull, index) != e0);
    const MeapMasker other_seed(make_config(0.15, 8));
    CHECK(other_seed.mask_positions(tokens.data(), T, 0, index) != e0);
    const MeapMasker high_seed(make_config(0.15, 7 + (uint64_t{1} << 40)));
    CHECK(high_seed.mask_positions(tokens.data(), T, 0, index) != e0);
  }
}

TEST_CASE("ratio 0 leaves the inputs byte-identical", "[masker]") {
  for (int32_t mask_id : {kMask, -1}) {
    MaskerConfig c = make_config(0.0);
    c.mask_id = mask_id;
    const MeapMasker m(c);
    for (int64_t T : {1, 17, 256, 2048}) {
      const auto tokens = clean_tokens(T);
      const Example e = run(m, tokens, 2, 11);
      CHECK(std::memcmp(e.inputs.data(), tokens.data(), T * sizeof(int32_t)) == 0);
      CHECK(std::memcmp(e.targets.data(), tokens.data() + 1, T * sizeof(int32_t)) == 0);
      CHECK(std::all_of(e.weights.begin(), e.weights.end(), [](float w) { return w == 1.0f; }));
      CHECK(m.mask_positions(tokens.data(), T, 2, 11).empty());
    }
  }
}

TEST_CASE("targets are the clean shifted tokens, inputs differ only at masked positions",
          "[masker]") {
  for (double ratio : {0.15, 0.5, 0.95}) {
    const MeapMasker m(make_config(ratio));
    for (int64_t T : {1, 2, 64, 513}) {
      for (uint64_t index = 0; index < 20; ++index) {
        CAPTURE(ratio, T, index);
        const auto tokens = clean_tokens(T, static_cast<uint32_t>(index));
        const Example e = run(m, tokens, 0, index);
        REQUIRE(std::equal(e.targets.begin(), e.targets.end(), tokens.begin() + 1));
        REQUIRE(std::find(e.targets.begin(), e.targets.end(), kMask) == e.targets.end());
        REQUIRE(std::all_of(e.weights.begin(), e.weights.end(), [](float w) { return w == 1.0f; }));
        const auto positions = m.mask_positions(tokens.data(), T, 0, index);
        REQUIRE(std::is_sorted(positions.begin(), positions.end()));
        std::vector<int32_t> expected(tokens.begin(), tokens.end() - 1);
        for (int64_t p : positions) expected[p] = kMask;
        REQUIRE(e.inputs == expected);
      }
    }
  }
}

TEST_CASE("keep_special_unmasked never masks BOS or EOS", "[masker]") {
  // Packed documents: EOS then BOS every few tokens, from position 0.
  auto packed = [](int64_t T, int period) {
    auto t = clean_tokens(T);
    for (int64_t i = 0; i <= T; ++i) {
      if (i % period == 0) t[i] = kBos;
      if (i % period == period - 1) t[i] = kEos;
    }
    return t;
  };
  auto eligible_count = [](const std::vector<int32_t>& t) {
    return std::count_if(t.begin(), t.end() - 1, [](int32_t x) { return x != kBos && x != kEos; });
  };
  MaskerConfig c = make_config(0.15);
  c.keep_special_unmasked = true;
  const MeapMasker keep(c);
  const MeapMasker plain(make_config(0.15));

  int64_t plain_hits_special = 0;
  for (int period : {3, 7, 40}) {
    for (int64_t T : {64, 256, 1000}) {
      const auto tokens = packed(T, period);
      for (uint64_t index = 0; index < 30; ++index) {
        CAPTURE(period, T, index);
        const Example e = run(keep, tokens, 1, index);
        const auto positions = masked_in(e.inputs);
        REQUIRE(static_cast<int64_t>(positions.size()) ==
                std::min<int64_t>(keep.mask_count(T), eligible_count(tokens)));
        for (int64_t p : positions) REQUIRE((tokens[p] != kBos && tokens[p] != kEos));
        REQUIRE(keep.mask_positions(tokens.data(), T, 1, index) == positions);
        REQUIRE(std::equal(e.targets.begin(), e.targets.end(), tokens.begin() + 1));
        for (int64_t p : plain.mask_positions(tokens.data(), T, 1, index))
          plain_hits_special += tokens[p] == kBos || tokens[p] == kEos;
      }
    }
  }
  CHECK(plain_hits_special > 0);  // without the option the specials are fair game

  SECTION("fewer eligible positions than round(P*T): all of them are masked") {
    MaskerConfig half = c;
    half.mask_ratio = 0.5;
    const MeapMasker m(half);
    std::vector<int32_t> tokens(21, kEos);
    for (int64_t p : {2, 5, 11, 19}) tokens[p] = 500 + static_cast<int32_t>(p);
    tokens[0] = kBos;
    CHECK(m.mask_positions(tokens.data(), 20, 0, 0) == std::vector<int64_t>{2, 5, 11, 19});
    std::vector<int32_t> only_specials(21, kEos);
    CHECK(m.mask_positions(only_specials.data(), 20, 0, 0).empty());
  }
  SECTION("only an EOS id: BOS-free tokenizers work too") {
    MaskerConfig eos_only = c;
    eos_only.bos_id = -1;
    const MeapMasker m(eos_only);
    const auto tokens = packed(256, 5);
    for (uint64_t index = 0; index < 20; ++index)
      for (int64_t p : m.mask_positions(tokens.data(), 256, 0, index)) REQUIRE(tokens[p] != kEos);
  }
}

TEST_CASE("a source sequence that already holds the [MASK] id is refused", "[masker]") {
  const int64_t T = 32;
  std::vector<int32_t> inputs(T), targets(T);
  std::vector<float> weights(T);
  for (double ratio : {0.15, 0.0}) {
    const MeapMasker m(make_config(ratio));
    for (int64_t at : {int64_t{0}, int64_t{17}, T}) {  // T: only the last target would hold it
      CAPTURE(ratio, at);
      auto tokens = clean_tokens(T);
      tokens[at] = kMask;
      CHECK_THROWS_WITH(m.make_example(tokens.data(), T, 4, 77, inputs.data(), targets.data(),
                                       weights.data()),
                        Contains("[MASK] id 3") && Contains("sequence 77") &&
                            Contains("at token " + std::to_string(at)));
      CHECK_THROWS_AS(m.mask_positions(tokens.data(), T, 4, 77), meap::Error);
    }
  }
}

TEST_CASE("masked positions are uniform over the sequence", "[masker]") {
  // T = 64, k = 16, 20000 sequences: 5000 expected hits per position. Sampling without
  // replacement makes each cell's variance E(1 - k/T), so the statistic is about
  // 63 * 0.75 = 47 with sd ~ 8; 120 is ~9 sd away and the run is deterministic anyway.
  const int64_t T = 64, N = 20000;
  const MeapMasker m(make_config(0.25, 2024));
  const auto tokens = clean_tokens(T);
  std::vector<double> hits(T, 0.0);
  std::vector<double> draws_in_first_half(17, 0.0);  // hypergeometric(64, 32, 16)
  int64_t adjacent = 0;
  for (int64_t i = 0; i < N; ++i) {
    const auto positions = m.mask_positions(tokens.data(), T, i % 3, i);
    REQUIRE(positions.size() == 16);
    int first_half = 0;
    for (size_t j = 0; j < positions.size(); ++j) {
      hits[positions[j]] += 1;
      first_half += positions[j] < T / 2;
      if (j > 0) adjacent += positions[j] == positions[j - 1] + 1;
    }
    draws_in_first_half[first_half] += 1;
  }
  const double expected = static_cast<double>(N) * 16 / T;
  double chi2 = 0;
  for (double h : hits) chi2 += (h - expected) * (h - expected) / expected;
  CAPTURE(chi2);
  CHECK(chi2 < 120.0);
  CHECK(*std::min_element(hits.begin(), hits.end()) > 0.9 * expected);
  CHECK(*std::max_element(hits.begin(), hits.end()) < 1.1 * expected);

  // Pairs: 63 adjacent pairs, each both-masked with probability 16*15/(64*63).
  const double expected_adjacent = N * 63.0 * 16 * 15 / (64.0 * 63);
  CAPTURE(adjacent, expected_adjacent);
  CHECK(std::abs(adjacent - expected_adjacent) < 0.05 * expected_adjacent);

  // How many of the 16 fall in the first half: hypergeometric mean 8, variance 16*.5*.5*48/63.
  double mean = 0, var = 0;
  for (int j = 0; j <= 16; ++j) mean += j * draws_in_first_half[j] / N;
  for (int j = 0; j <= 16; ++j) var += (j - mean) * (j - mean) * draws_in_first_half[j] / N;
  CAPTURE(mean, var);
  CHECK(std::abs(mean - 8.0) < 0.05);
  CHECK(std::abs(var - 16 * 0.25 * 48 / 63) < 0.15);
}

TEST_CASE("the mask stream is pinned", "[masker]") {
  // A change here changes every mask of every run: resumed runs and world-size comparisons
  // across meap versions would silently see different data. Change only on purpose.
  const MeapMasker m(make_config(0.25, 1234));
  const auto tokens = clean_tokens(16);
  const auto a = m.mask_positions(tokens.data(), 16, 0, 0);
  const auto b = m.mask_positions(tokens.data(), 16, 5, (uint64_t{1} << 33) + 9);
  CAPTURE(a, b);
  CHECK(a == std::vector<int64_t>{2, 6, 11, 14});
  CHECK(b == std::vector<int64_t>{0, 7, 8, 11});
}

TEST_CASE("the stream follows its documented definition", "[masker]") {
  // Written from the contract, not from the implementation: word w of a sequence is lane w % 4
  // of philox4x32({w / 4, epoch, index lo, index hi}, {seed lo, seed hi ^ 'MEAP'}); Floyd's
  // algorithm over the eligible positions with Lemire's rejection for bounded draws.
  auto naive = [](uint64_t seed, double ratio, const std::vector<int32_t>& tokens,
                  bool keep_special, uint64_t epoch, uint64_t index) {
    const int64_t T = static_cast<int64_t>(tokens.size()) - 1;
    std::vector<int64_t> eligible;
    for (int64_t t = 0; t < T; ++t)
      if (!keep_special || (tokens[t] != kBos && tokens[t] != kEos)) eligible.push_back(t);
    const int64_t n = static_cast<int64_t>(eligible.size());
    const int64_t k = std::min<int64_t>(std::llround(ratio * T), n);
    const meap::PhiloxKey key = {static_cast<uint32_t>(seed),
                                 static_cast<uint32_t>(seed >> 32) ^ 0x4D454150u};
    uint64_t w = 0;
    auto word = [&] {
      const meap::PhiloxCounter c = {static_cast<uint32_t>(w / 4), static_cast<uint32_t>(epoch),
                                     static_cast<uint32_t>(index),
                                     static_cast<uint32_t>(index >> 32)};
      return meap::philox4x32(c, key)[w++ % 4];
    };
    std::set<int64_t> chosen;
    for (int64_t j = n - k; j < n; ++j) {
      const uint64_t range = static_cast<uint64_t>(j + 1);
      uint64_t m = word() * range;
      while ((m & 0xFFFFFFFFu) < (uint64_t{1} << 32) % range) m = word() * range;
      const int64_t t = static_cast<int64_t>(m >> 32);
      chosen.insert(chosen.count(eligible[t]) ? eligible[j] : eligible[t]);
    }
    return std::vector<int64_t>(chosen.begin(), chosen.end());
  };
  for (bool keep_special : {false, true}) {
    MaskerConfig c = make_config(0.3, 0xABCDEF0123456789ull);
    c.keep_special_unmasked = keep_special;
    const MeapMasker m(c);
    for (int64_t T : {5, 100, 777}) {
      auto tokens = clean_tokens(T);
      for (int64_t i = 0; i <= T; i += 9) tokens[i] = (i % 2) ? kEos : kBos;
      for (uint64_t index : {uint64_t{0}, uint64_t{41}, (uint64_t{1} << 35) + 3}) {
        CAPTURE(keep_special, T, index);
        REQUIRE(m.mask_positions(tokens.data(), T, 6, index) ==
                naive(c.seed, 0.3, tokens, keep_special, 6, index));
      }
    }
  }
}

TEST_CASE("invalid masker configs and calls are refused", "[masker]") {
  for (double ratio : {1.0, 1.5, -0.1, -1e-12, std::numeric_limits<double>::quiet_NaN(),
                       std::numeric_limits<double>::infinity()}) {
    CAPTURE(ratio);
    CHECK_THROWS_WITH(MeapMasker(make_config(ratio)),
                      Contains("data.meap.mask_ratio") && Contains("[0, 1)"));
  }
  MaskerConfig no_mask = make_config(0.15);
  no_mask.mask_id = -1;
  CHECK_THROWS_WITH(MeapMasker(no_mask),
                    Contains("data.meap.mask_ratio") && Contains("[MASK]"));
  no_mask.mask_ratio = 0.0;
  CHECK_NOTHROW(MeapMasker(no_mask));

  MaskerConfig clash = make_config(0.15);
  clash.mask_id = kEos;
  CHECK_THROWS_WITH(MeapMasker(clash), Contains("data.meap.mask_ratio") && Contains("EOS"));

  const MeapMasker m(make_config(0.15));
  const auto tokens = clean_tokens(8);
  CHECK_THROWS_AS(m.mask_positions(tokens.data(), 0, 0, 0), meap::Error);
  CHECK_THROWS_AS(m.mask_positions(tokens.data(), 8, uint64_t{1} << 32, 0), meap::Error);
  CHECK_NOTHROW(m.mask_positions(tokens.data(), 8, 0xFFFFFFFFull, 0));
}

// data.meap.sampling: authors_code (the released code's random.seed(50 + step % 51);
// random.sample(range(0, T - 1), max(1, int(P * T)))). Python's own draws are compared in
// tests/scripts/check_authors_masks.py; here, the properties that make it safe to train with.
TEST_CASE("authors_code: max(1, int(P*T)) positions in 0 .. T-2, a pure function of the step",
          "[masker]") {
  MaskerConfig c = make_config(0.15, 1234);
  c.sampling = meap::MaskSampling::authors_code;
  const MeapMasker m(c);
  CHECK(m.mask_count(128) == 19);   // int(19.2)
  CHECK(m.mask_count(10) == 1);     // int(1.5); per_sequence rounds to 2
  CHECK(m.mask_count(2) == 1);      // max(1, int(0.3))
  CHECK(m.mask_count(2048) == 307);
  MaskerConfig zero = c;
  zero.mask_ratio = 0;
  CHECK(MeapMasker(zero).mask_count(128) == 0);  // P = 0 is NTP, not the released max(1, 0)

  const int64_t T = 64;
  const auto tokens = clean_tokens(T);
  for (uint64_t step = 0; step < 120; ++step) {
    const auto positions = m.mask_positions(tokens.data(), T, 0, 0, step);
    REQUIRE(static_cast<int64_t>(positions.size()) == m.mask_count(T));
    REQUIRE(positions.back() < T - 1);  // the last input is never masked
    // Not the epoch, the sequence, the seed, the tokens or the thread: only step % 51.
    MaskerConfig other = c;
    other.seed = 99;
    const MeapMasker m2(other);
    REQUIRE(m2.mask_positions(clean_tokens(T, 7).data(), T, 5, 12345, step) == positions);
    REQUIRE(m.mask_positions(tokens.data(), T, 0, 0, step + 51) == positions);
    std::vector<int64_t> from_thread;
    std::thread([&] { from_thread = m.mask_positions(tokens.data(), T, 3, 9, step); }).join();
    REQUIRE(from_thread == positions);
    const Example e = run(m, tokens, 0, 0);  // step 0 through make_example's default
    if (step == 0) REQUIRE(masked_in(e.inputs) == positions);
    // The cached pattern is the one computed afresh.
    auto fresh = MeapMasker::authors_code_positions(step, T, m.mask_count(T));
    std::sort(fresh.begin(), fresh.end());
    REQUIRE(fresh == positions);
  }
  CHECK(m.mask_positions(tokens.data(), T, 0, 0, 1) != m.mask_positions(tokens.data(), T, 0, 0, 2));
  CHECK_THROWS_WITH(m.mask_positions(tokens.data(), 1, 0, 0, 0), Contains("data.meap.sampling"));
}

TEST_CASE("authors_code: keep_special_unmasked leaves drawn BOS/EOS positions clean", "[masker]") {
  MaskerConfig c = make_config(0.3, 5);
  c.sampling = meap::MaskSampling::authors_code;
  const MeapMasker plain(c);
  c.keep_special_unmasked = true;
  const MeapMasker keep(c);
  const int64_t T = 40;
  for (uint64_t step = 0; step < 51; ++step) {
    auto tokens = clean_tokens(T, static_cast<uint32_t>(step));
    const auto all = plain.mask_positions(tokens.data(), T, 0, 0, step);
    tokens[all.front()] = kEos;
    tokens[all.back()] = kBos;
    const auto kept = keep.mask_positions(tokens.data(), T, 0, 0, step);
    REQUIRE(kept == std::vector<int64_t>(all.begin() + 1, all.end() - 1));
  }
}
