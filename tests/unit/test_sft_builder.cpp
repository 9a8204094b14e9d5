// SftBuilder: the exact NTP-SFT and MEAP-SFT documents (concat and separate), the mask
// count, the min_answer_tokens rule at its edge, masks per epoch, mask scope, ratio 0.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "meap/core/error.hpp"
#include "meap/data/sft_builder.hpp"
#include "meap/data/sft_shard.hpp"

using namespace meap;

namespace {

constexpr int32_t kBos = 1, kEos = 2, kMask = 4;
constexpr uint8_t T = 0, P = 1, A = 2, E = 3;  // roles

struct Sample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> roles;
  int64_t n() const { return static_cast<int64_t>(tokens.size()); }
};

// [BOS] prompt (n_prompt tokens 10, 11, ...) "\n"(7) answer (n_answer tokens 100, 101, ...) [EOS]
Sample make_sample(int n_prompt, int n_answer) {
  Sample s;
  s.tokens.push_back(kBos);
  s.roles.push_back(T);
  for (int i = 0; i < n_prompt; ++i) {
    s.tokens.push_back(10 + i % 50);
    s.roles.push_back(P);
  }
  s.tokens.push_back(7);
  s.roles.push_back(T);
  for (int i = 0; i < n_answer; ++i) {
    s.tokens.push_back(100 + i % 200);
    s.roles.push_back(A);
  }
  s.tokens.push_back(kEos);
  s.roles.push_back(E);
  return s;
}

std::vector<SftDocument> docs_of(const SftBuilder& b, const Sample& s, uint64_t epoch = 0,
                                 uint64_t index = 0) {
  return b.documents(s.tokens.data(), s.roles.data(), s.n(), epoch, index);
}

SftOptions opts(double p, int64_t min_answer, SftLayout layout = SftLayout::concat,
                SftMaskScope scope = SftMaskScope::answer) {
  SftOptions o;
  o.mask_ratio = p;
  o.min_answer_tokens = min_answer;
  o.layout = layout;
  o.mask_scope = scope;
  o.seed = 7;
  return o;
}

}  // namespace

TEST_CASE("sft builder: NTP-SFT is [BOS] prompt answer [EOS] with loss on answer and EOS",
          "[sft]") {
  const Sample s = make_sample(2, 3);  // BOS 10 11 \n 100 101 102 EOS
  const SftBuilder b(opts(0.1, 50), kMask);
  const auto docs = docs_of(b, s);
  REQUIRE(docs.size() == 1);
  CHECK(docs[0].inputs == std::vector<int32_t>{kBos, 10, 11, 7, 100, 101, 102});
  CHECK(docs[0].targets == std::vector<int32_t>{10, 11, 7, 100, 101, 102, kEos});
  CHECK(docs[0].weights == std::vector<float>{0, 0, 0, 1, 1, 1, 1});
}

TEST_CASE("sft builder: MEAP concat is the original then a copy with masked answer tokens",
          "[sft]") {
  const Sample s = make_sample(2, 4);  // BOS 10 11 \n 100 101 102 103 EOS: n = 9
  const SftBuilder b(opts(0.5, 2), kMask);  // round(0.5 * 4) = 2 masks
  const auto masked = b.mask_positions(s.roles.data(), s.n(), 0, 0);
  // Pinned: the draw is a pure function of (seed 7, epoch 0, sample 0).
  CHECK(masked == std::vector<int64_t>{4, 6});
  const auto docs = docs_of(b, s);
  REQUIRE(docs.size() == 1);
  // z = original ++ copy; copy tokens 4 and 6 (100, 102) are [MASK].
  CHECK(docs[0].inputs == std::vector<int32_t>{kBos, 10, 11, 7, 100, 101, 102, 103, kEos,
                                               kBos, 10, 11, 7, kMask, 101, kMask, 103});
  CHECK(docs[0].targets == std::vector<int32_t>{10, 11, 7, 100, 101, 102, 103, kEos, kBos,
                                                10, 11, 7, 100, 101, 102, 103, kEos});
  // Loss: the original's answer + EOS (positions 3..7), then in the copy the positions whose
  // next token is masked (12 predicts copy token 4, 14 predicts copy token 6).
  CHECK(docs[0].weights ==
        std::vector<float>{0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0});
}

TEST_CASE("sft builder: MEAP separate is the original, then the masked copy on its own",
          "[sft]") {
  const Sample s = make_sample(2, 4);
  const SftBuilder b(opts(0.5, 2, SftLayout::separate), kMask);
  const auto masked = b.mask_positions(s.roles.data(), s.n(), 0, 0);
  CHECK(masked == std::vector<int64_t>{4, 6});  // the layout does not change the draw
  const auto docs = docs_of(b, s);
  REQUIRE(docs.size() == 2);
  CHECK(docs[0].inputs == std::vector<int32_t>{kBos, 10, 11, 7, 100, 101, 102, 103});
  CHECK(docs[0].weights == std::vector<float>{0, 0, 0, 1, 1, 1, 1, 1});
  CHECK(docs[1].inputs == std::vector<int32_t>{kBos, 10, 11, 7, kMask, 101, kMask, 103});
  CHECK(docs[1].targets == std::vector<int32_t>{10, 11, 7, 100, 101, 102, 103, kEos});
  CHECK(docs[1].weights == std::vector<float>{0, 0, 0, 1, 0, 1, 0, 0});
}

TEST_CASE("sft builder: exactly round(P * answer_len) masks, all on answer tokens", "[sft]") {
  for (double p : {0.1, 0.15, 0.3}) {
    const SftBuilder b(opts(p, 50), kMask);
    for (int answer : {51, 60, 75, 99, 150, 333}) {
      const Sample s = make_sample(17, answer);
      const auto masked = b.mask_positions(s.roles.data(), s.n(), 3, answer);
      const auto expected = static_cast<size_t>(std::llround(p * answer));
      INFO("P " << p << " answer " << answer);
      CHECK(masked.size() == expected);
      CHECK(b.shape(s.n(), answer).mask_count == static_cast<int64_t>(expected));
      for (int64_t m : masked) CHECK(s.roles[m] == A);
      const auto docs = docs_of(b, s, 3, answer);
      const auto& in = docs[0].inputs;
      CHECK(std::count(in.begin(), in.end(), kMask) == static_cast<long>(expected));
      // Loss weight: the original's answer + EOS, plus one per mask.
      float w = 0;
      for (float x : docs[0].weights) w += x;
      CHECK(w == Approx(answer + 1 + expected));
    }
  }
}

TEST_CASE("sft builder: answers of 50 tokens get NTP-SFT, 51 tokens get MEAP", "[sft]") {
  const SftBuilder b(opts(0.1, 50), kMask);
  const Sample s50 = make_sample(5, 50), s51 = make_sample(5, 51);
  const SftShape a = b.shape(s50.n(), 50), c = b.shape(s51.n(), 51);
  CHECK_FALSE(a.meap);
  CHECK(a.n_documents == 1);
  CHECK(a.length[0] == s50.n() - 1);
  CHECK(c.meap);
  CHECK(c.mask_count == 5);  // round(5.1)
  CHECK(c.length[0] == 2 * s51.n() - 1);
  CHECK(b.mask_positions(s50.roles.data(), s50.n(), 0, 0).empty());
  const auto d50 = docs_of(b, s50);
  CHECK(std::count(d50[0].inputs.begin(), d50[0].inputs.end(), kMask) == 0);
  const SftBuilder sep(opts(0.1, 50, SftLayout::separate), kMask);
  CHECK(sep.shape(s50.n(), 50).n_documents == 1);
  CHECK(sep.shape(s51.n(), 51).n_documents == 2);
}

TEST_CASE("sft builder: ratio 0 gives NTP-SFT exactly, whatever the answer length", "[sft]") {
  const SftBuilder ntp(opts(0.0, 50), -1);  // no [MASK] needed
  const SftBuilder ref(opts(0.1, 1000000), kMask);  // NTP by the length rule
  for (int answer : {1, 50, 51, 400}) {
    const Sample s = make_sample(9, answer);
    const auto a = docs_of(ntp, s), c = docs_of(ref, s);
    REQUIRE(a.size() == 1);
    CHECK(a[0].inputs == c[0].inputs);
    CHECK(a[0].targets == c[0].targets);
    CHECK(a[0].weights == c[0].weights);
    CHECK(a[0].inputs == std::vector<int32_t>(s.tokens.begin(), s.tokens.end() - 1));
  }
}

TEST_CASE("sft builder: masks are fresh per epoch and a pure function of (seed, epoch, sample)",
          "[sft]") {
  const SftBuilder b(opts(0.1, 50), kMask);
  const Sample s = make_sample(20, 200);  // 20 masks among 200 answer tokens
  std::set<std::vector<int64_t>> seen;
  for (uint64_t epoch = 0; epoch < 6; ++epoch) {
    const auto m = b.mask_positions(s.roles.data(), s.n(), epoch, 42);
    CHECK(m == b.mask_positions(s.roles.data(), s.n(), epoch, 42));
    seen.insert(m);
  }
  CHECK(seen.size() == 6);
  // Another sample index, another draw; another seed, another draw.
  CHECK(b.mask_positions(s.roles.data(), s.n(), 0, 43) !=
        b.mask_positions(s.roles.data(), s.n(), 0, 42));
  SftOptions o = opts(0.1, 50);
  o.seed = 8;
  CHECK(SftBuilder(o, kMask).mask_positions(s.roles.data(), s.n(), 0, 42) !=
        b.mask_positions(s.roles.data(), s.n(), 0, 42));
}

TEST_CASE("sft builder: mask scope all masks among every copy token but BOS", "[sft]") {
  const SftBuilder b(opts(0.2, 50, SftLayout::concat, SftMaskScope::all), kMask);
  const Sample s = make_sample(40, 60);  // n = 103
  const auto m = b.mask_positions(s.roles.data(), s.n(), 1, 5);
  CHECK(static_cast<int64_t>(m.size()) == std::llround(0.2 * (s.n() - 1)));
  CHECK(m.front() >= 1);
  bool prompt_masked = false;
  for (int64_t i : m) prompt_masked |= s.roles[i] == P;
  CHECK(prompt_masked);  // 20 of 102 positions: the prompt (40 tokens) gets some
  // The 50-token rule still counts answer tokens: an answer of 50 stays NTP-SFT.
  const Sample short_answer = make_sample(200, 50);
  CHECK_FALSE(b.shape(short_answer.n(), 50).meap);
}

TEST_CASE("sft builder: refuses bad options and tokens that hold [MASK]", "[sft]") {
  CHECK_THROWS_WITH(SftBuilder(opts(1.0, 50), kMask), Catch::Contains("sft.mask_ratio"));
  CHECK_THROWS_WITH(SftBuilder(opts(0.1, -1), kMask), Catch::Contains("sft.min_answer_tokens"));
  CHECK_THROWS_WITH(SftBuilder(opts(0.1, 50), -1), Catch::Contains("[MASK]"));
  CHECK_THROWS_WITH(parse_sft_layout("paper"), Catch::Contains("sft.layout"));
  CHECK_THROWS_WITH(parse_sft_mask_scope("prompt"), Catch::Contains("sft.mask_scope"));
  Sample s = make_sample(2, 3);
  s.tokens[2] = kMask;
  const SftBuilder b(opts(0.1, 50), kMask);
  CHECK_THROWS_WITH(docs_of(b, s), Catch::Contains("already contains the [MASK] id"));
}
