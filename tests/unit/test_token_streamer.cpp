// TokenStreamer: rank slices, exact resume, per-epoch permutations, shard boundaries,
// masking, and the errors a user can run into.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "meap/core/rng.hpp"
#include "meap/data/token_streamer.hpp"

namespace fs = std::filesystem;
using namespace meap;

namespace {

const SpecialTokens kSpecial{1, 2, 3, 4};  // bos, eos, pad, mask
constexpr uint32_t kVocab = 1000;

// Writes shards of the given sizes with tokens in [5, vocab) and returns the whole stream.
std::vector<int32_t> write_shards(const fs::path& dir, const std::vector<size_t>& sizes,
                                  uint64_t seed = 1) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<int32_t> all;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<int32_t> tokens(sizes[s]);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const auto r = philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(s), 0, 0},
                                philox_key(seed));
      tokens[i] = 5 + static_cast<int32_t>(r[0] % (kVocab - 5));
    }
    ShardWriter w((dir / ("train-" + std::to_string(s) + ".bin")).string(), kVocab, kSpecial);
    w.append(tokens.data(), tokens.size());
    w.finish();
    all.insert(all.end(), tokens.begin(), tokens.end());
  }
  return all;
}

StreamerConfig base_config(const fs::path& dir) {
  StreamerConfig c;
  c.pattern = (dir / "train-*.bin").string();
  c.seq_len = 16;
  c.global_batch_size = 8;
  c.seed = 99;
  c.mask_ratio = 0.15;
  return c;
}

fs::path temp_dir(const char* name) { return fs::temp_directory_path() / name; }

}  // namespace

TEST_CASE("streamer: the union of the rank slices is the one-rank batch", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_ranks");
  write_shards(dir, {700, 500, 333});  // (1533 - 1) / 16 = 95 sequences, 11 batches an epoch
  StreamerConfig c = base_config(dir);
  TokenStreamer one(c);
  REQUIRE(one.batches_per_epoch() == 11);
  for (int world : {2, 4}) {
    std::vector<std::unique_ptr<TokenStreamer>> ranks;
    for (int r = 0; r < world; ++r) {
      StreamerConfig rc = c;
      rc.rank = r;
      rc.world_size = world;
      rc.prefetch = r % 2 ? 0 : 3;  // prefetching or not changes nothing
      ranks.push_back(std::make_unique<TokenStreamer>(rc));
    }
    one.restore({});
    for (int step = 0; step < 25; ++step) {  // crosses two epoch boundaries
      const TokenBatch& whole = one.next();
      const int64_t rows = whole.batch_size / world, T = c.seq_len;
      for (int r = 0; r < world; ++r) {
        const TokenBatch& part = ranks[r]->next();
        INFO("world " << world << " rank " << r << " step " << step);
        REQUIRE(part.batch_size == rows);
        REQUIRE(part.position == whole.position);
        const auto off = r * rows * T;
        CHECK(std::equal(part.inputs.begin(), part.inputs.end(), whole.inputs.begin() + off));
        CHECK(std::equal(part.targets.begin(), part.targets.end(), whole.targets.begin() + off));
        CHECK(std::equal(part.weights.begin(), part.weights.end(), whole.weights.begin() + off));
      }
    }
  }
}

TEST_CASE("streamer: a restored position yields the same next batches", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_resume");
  write_shards(dir, {1200, 900});
  const StreamerConfig c = base_config(dir);
  TokenStreamer a(c);
  for (int i = 0; i < 20; ++i) a.next();
  const StreamerState saved = a.state();
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(a.next().inputs);

  TokenStreamer b(c);  // a fresh process
  b.restore(saved);
  for (int i = 0; i < 5; ++i) CHECK(b.next().inputs == expected[i]);
  a.restore(saved);  // and the same streamer, rewound
  for (int i = 0; i < 5; ++i) CHECK(a.next().inputs == expected[i]);
  CHECK_THROWS_WITH(b.restore({0, 1000}), Catch::Contains("past the end of an epoch"));
}

TEST_CASE("streamer: each epoch visits every sequence once, in a fresh order", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_epochs");
  write_shards(dir, {1000});  // 62 sequences: not a power of two
  TokenStreamer s(base_config(dir));
  const uint64_t S = s.sequences_per_epoch();
  REQUIRE(S == 62);
  std::vector<uint64_t> orders[2];
  for (uint64_t e = 0; e < 2; ++e) {
    std::set<uint64_t> seen;
    for (uint64_t i = 0; i < S; ++i) {
      orders[e].push_back(s.sequence_at(e, i));
      seen.insert(orders[e].back());
    }
    CHECK(seen.size() == S);
    CHECK(*seen.rbegin() == S - 1);
  }
  CHECK(orders[0] != orders[1]);
}

TEST_CASE("streamer: sequences follow the token stream across shard boundaries", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_order");
  const std::vector<int32_t> all = write_shards(dir, {37, 100, 61});
  StreamerConfig c = base_config(dir);
  c.shuffle = false;
  c.mask_ratio = 0;
  c.global_batch_size = 4;
  TokenStreamer s(c);
  const int64_t T = c.seq_len;
  for (uint64_t b = 0; b < s.batches_per_epoch(); ++b) {
    const TokenBatch& batch = s.next();
    for (int64_t i = 0; i < batch.batch_size; ++i) {
      const uint64_t seq = batch.global_index[i];
      for (int64_t t = 0; t < T; ++t) {
        REQUIRE(batch.inputs[i * T + t] == all[seq * T + t]);
        REQUIRE(batch.targets[i * T + t] == all[seq * T + t + 1]);
      }
    }
  }
}

TEST_CASE("streamer: MEAP masks exactly round(P T) inputs, targets stay clean", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_mask");
  write_shards(dir, {3000});
  StreamerConfig c = base_config(dir);
  c.seq_len = 40;  // 0.15 * 40 = 6 masks per row
  TokenStreamer masked(c);
  c.mask_ratio = 0;
  TokenStreamer clean(c);
  for (int step = 0; step < 5; ++step) {
    const TokenBatch& m = masked.next();
    const TokenBatch& u = clean.next();
    CHECK(m.targets == u.targets);
    for (int64_t i = 0; i < m.batch_size; ++i) {
      int masks = 0;
      for (int64_t t = 0; t < c.seq_len; ++t) {
        const int64_t k = i * c.seq_len + t;
        if (m.inputs[k] == kSpecial.mask) {
          ++masks;
        } else {
          REQUIRE(m.inputs[k] == u.inputs[k]);
        }
        REQUIRE(m.targets[k] != kSpecial.mask);
        REQUIRE(m.weights[k] == 1.0f);
      }
      CHECK(masks == 6);
    }
  }
}

TEST_CASE("streamer: errors name the problem", "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_errors");
  write_shards(dir, {100});
  StreamerConfig c = base_config(dir);
  c.pattern = (dir / "nothing-*.bin").string();
  CHECK_THROWS_WITH(TokenStreamer(c), Catch::Contains("no token shards match") &&
                                          Catch::Contains("nothing-*.bin"));
  c = base_config(dir);  // 6 sequences < one batch of 8
  CHECK_THROWS_WITH(TokenStreamer(c), Catch::Contains("fewer than one global batch"));
  c.global_batch_size = 6;
  c.world_size = 4;
  CHECK_THROWS_WITH(TokenStreamer(c), Catch::Contains("train.global_batch_size"));

  // A shard that already holds [MASK] is refused when the prefetch thread meets it.
  {
    std::vector<int32_t> tokens(200, 7);
    tokens[50] = kSpecial.mask;
    ShardWriter w((dir / "train-0.bin").string(), kVocab, kSpecial);
    w.append(tokens.data(), tokens.size());
    w.finish();
  }
  c = base_config(dir);
  c.shuffle = false;
  c.global_batch_size = 2;
  TokenStreamer s(c);
  s.next();  // sequences 0 and 1: clean
  CHECK_THROWS_WITH(s.next(), Catch::Contains("already contains the [MASK] id"));
}

// data.meap.sampling: authors_code -- one pattern per optimizer step (epoch * batches + batch),
// shared by every row and rank, resumable.
TEST_CASE("streamer: authors_code masks every row of a step alike, on any rank and after a resume",
          "[streamer]") {
  const fs::path dir = temp_dir("meap_streamer_authors");
  write_shards(dir, {1533});  // 95 sequences of 16: 11 batches of 8 an epoch
  StreamerConfig c = base_config(dir);
  c.mask_sampling = MaskSampling::authors_code;
  c.mask_ratio = 0.2;  // max(1, int(0.2 * 16)) = 3 masks a row
  TokenStreamer one(c);
  const uint64_t bpe = one.batches_per_epoch();
  REQUIRE(bpe == 11);
  const int64_t T = c.seq_len;
  std::vector<std::vector<int32_t>> whole_inputs;
  for (uint64_t step = 0; step < 60; ++step) {  // five epochs: steps past 51 wrap around
    const TokenBatch& b = one.next();
    REQUIRE(b.position.epoch * bpe + b.position.batch == step);
    const std::vector<int64_t> pattern = MeapMasker::authors_code_positions(step, T, 3);
    std::set<int64_t> expected(pattern.begin(), pattern.end());
    REQUIRE(expected.size() == 3);
    CHECK(*expected.rbegin() < T - 1);  // the last input is never masked
    for (int64_t i = 0; i < b.batch_size; ++i) {
      std::set<int64_t> got;
      for (int64_t t = 0; t < T; ++t)
        if (b.inputs[i * T + t] == kSpecial.mask) got.insert(t);
      INFO("step " << step << " row " << i);
      REQUIRE(got == expected);
    }
    whole_inputs.push_back(b.inputs);
  }
  // Step s and step s + 51 use the same pattern; steps s and s + 1 (almost always) not.
  const auto masks_of = [&](uint64_t s) {
    std::vector<int64_t> m;
    for (int64_t t = 0; t < T; ++t)
      if (whole_inputs[s][t] == kSpecial.mask) m.push_back(t);
    return m;
  };
  for (uint64_t s = 0; s + 51 < whole_inputs.size(); ++s) CHECK(masks_of(s) == masks_of(s + 51));
  std::set<std::vector<int64_t>> distinct;
  for (uint64_t s = 0; s < 51; ++s) distinct.insert(masks_of(s));
  CHECK(distinct.size() > 40);

  SECTION("rank slices are the one-rank batch") {
    for (int world : {2, 4}) {
      one.restore({});
      std::vector<std::unique_ptr<TokenStreamer>> ranks;
      for (int r = 0; r < world; ++r) {
        StreamerConfig rc = c;
        rc.rank = r;
        rc.world_size = world;
        ranks.push_back(std::make_unique<TokenStreamer>(rc));
      }
      for (int step = 0; step < 25; ++step) {
        const TokenBatch& whole = one.next();
        const int64_t rows = whole.batch_size / world;
        for (int r = 0; r < world; ++r) {
          const TokenBatch& part = ranks[r]->next();
          INFO("world " << world << " rank " << r << " step " << step);
          CHECK(std::equal(part.inputs.begin(), part.inputs.end(),
                           whole.inputs.begin() + r * rows * T));
        }
      }
    }
  }
  SECTION("a restored position yields the same batches, in a fresh streamer too") {
    TokenStreamer fresh(c);
    fresh.restore({1, 4});  // step 15
    for (uint64_t step = 15; step < 40; ++step) CHECK(fresh.next().inputs == whole_inputs[step]);
    one.restore({3, 2});  // step 35
    for (uint64_t step = 35; step < 60; ++step) CHECK(one.next().inputs == whole_inputs[step]);
  }
  SECTION("per_sequence (the default) draws other positions for each row") {
    StreamerConfig pc = c;
    pc.mask_sampling = MaskSampling::per_sequence;
    TokenStreamer per(pc);
    const TokenBatch& b = per.next();
    std::set<std::vector<int64_t>> rows;
    for (int64_t i = 0; i < b.batch_size; ++i) {
      std::vector<int64_t> m;
      for (int64_t t = 0; t < T; ++t)
        if (b.inputs[i * T + t] == kSpecial.mask) m.push_back(t);
      CHECK(m.size() == 3);  // round(0.2 * 16) = 3 as well
      rows.insert(m);
    }
    CHECK(rows.size() > 1);
  }
}
