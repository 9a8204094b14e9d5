// TokenStreamer: rank slices, exact resume, per-epoch permutations, shard boundaries,
// masking, and the errors a user can run into.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <utility>
#include <set>

#include "meap/core/rng.hpp"
#include "meap/data/token_streamer.hpp"
#include "fixtures.hpp"

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

}  // namespace

TEST_CASE("streamer: the union of the rank slices is the one-rank batch", "[streamer]") {
  const meap_test::TempDir scratch("meap_streamer_ranks");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_resume");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_epochs");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_order");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_mask");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_errors");
  const fs::path& dir = scratch.path();
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
  const meap_test::TempDir scratch("meap_streamer_authors");
  const fs::path& dir = scratch.path();
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

TEST_CASE("streamer: document_segments ends a document at its EOS, positions from 0",
          "[streamer]") {
  const int32_t eos = kSpecial.eos;
  const auto segments_of = [&](const std::vector<int32_t>& tokens) {
    std::pair<std::vector<int32_t>, std::vector<int32_t>> out;
    out.first.resize(tokens.size());
    out.second.resize(tokens.size());
    document_segments(tokens.data(), static_cast<int64_t>(tokens.size()), eos, out.first.data(),
                      out.second.data());
    return out;
  };
  // docs/data.md's worked example: "slept . [EOS] The dog ran [EOS] A". The EOS belongs to
  // the document it closes; the position after it opens the next, at position 0.
  const auto [seg, pos] = segments_of({10, 11, eos, 12, 13, 14, eos, 15});
  CHECK(seg == std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 2});
  CHECK(pos == std::vector<int32_t>{0, 1, 2, 0, 1, 2, 3, 0});
  // Two EOS in a row (a document of one EOS), a row that starts with an EOS, a row ending
  // on one (the next segment would start in the next row).
  const auto [seg2, pos2] = segments_of({eos, 5, eos, eos, 8, eos});
  CHECK(seg2 == std::vector<int32_t>{0, 1, 1, 2, 3, 3});
  CHECK(pos2 == std::vector<int32_t>{0, 0, 1, 0, 0, 1});
  // No EOS at all: one document, positions 0 .. T-1 (what no document mask means).
  const auto [seg3, pos3] = segments_of({5, 6, 7});
  CHECK(seg3 == std::vector<int32_t>{0, 0, 0});
  CHECK(pos3 == std::vector<int32_t>{0, 1, 2});
}

TEST_CASE("streamer: data.document_mask fills segments and positions from the clean tokens, "
          "rank- and resume-invariant", "[streamer]") {
  const meap_test::TempDir scratch("meap_streamer_documents");
  const fs::path& dir = scratch.path();
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Documents of 1 to 12 tokens, each followed by EOS: several per 16-token sequence.
  std::vector<int32_t> all;
  for (uint32_t d = 0; all.size() < 1500; ++d) {
    const auto r = philox4x32({d, 0, 0, 0}, philox_key(3));
    for (uint32_t i = 0; i < 1 + r[0] % 12; ++i) all.push_back(5 + static_cast<int32_t>((r[1] + i) % 900));
    all.push_back(kSpecial.eos);
  }
  {
    ShardWriter w((dir / "train-0.bin").string(), kVocab, kSpecial);
    w.append(all.data(), all.size());
    w.finish();
  }
  StreamerConfig c = base_config(dir);
  c.mask_ratio = 0.5;  // many masked EOS inputs: they must still end their documents
  c.document_mask = true;
  const int64_t T = c.seq_len;
  TokenStreamer docs(c);
  StreamerConfig off = c;
  off.document_mask = false;
  TokenStreamer plain(off);
  std::vector<TokenBatch> reference;
  int masked_eos = 0, boundaries = 0;
  for (uint64_t step = 0; step < docs.batches_per_epoch() + 3; ++step) {  // into epoch 1
    const TokenBatch& b = docs.next();
    const TokenBatch& p = plain.next();
    // The switch adds segments and positions and changes nothing else.
    CHECK(b.inputs == p.inputs);
    CHECK(b.targets == p.targets);
    CHECK(b.weights == p.weights);
    CHECK(p.segment_ids.empty());
    CHECK(p.positions.empty());
    REQUIRE(b.segment_ids.size() == static_cast<size_t>(b.batch_size * T));
    REQUIRE(b.positions.size() == static_cast<size_t>(b.batch_size * T));
    for (int64_t i = 0; i < b.batch_size; ++i) {
      const uint64_t seq = docs.sequence_at(b.position.epoch, b.global_index[i]);
      std::vector<int32_t> seg(T), pos(T);
      document_segments(all.data() + seq * T, T, kSpecial.eos, seg.data(), pos.data());
      CHECK(std::equal(seg.begin(), seg.end(), b.segment_ids.begin() + i * T));
      CHECK(std::equal(pos.begin(), pos.end(), b.positions.begin() + i * T));
      for (int64_t t = 0; t + 1 < T; ++t) {
        const bool is_eos = all[seq * T + t] == kSpecial.eos;
        boundaries += is_eos;
        if (is_eos && b.inputs[i * T + t] == kSpecial.mask) {
          ++masked_eos;
          CHECK(b.segment_ids[i * T + t + 1] == b.segment_ids[i * T + t] + 1);
          CHECK(b.positions[i * T + t + 1] == 0);
        }
      }
    }
    reference.push_back(b);
  }
  CHECK(boundaries > 200);
  CHECK(masked_eos > 20);
  // Two ranks, one of them on the caller's thread, see the same rows.
  std::vector<std::unique_ptr<TokenStreamer>> ranks;
  for (int r = 0; r < 2; ++r) {
    StreamerConfig rc = c;
    rc.rank = r;
    rc.world_size = 2;
    rc.prefetch = r;
    ranks.push_back(std::make_unique<TokenStreamer>(rc));
  }
  const size_t half = static_cast<size_t>(c.global_batch_size / 2 * T);
  for (const TokenBatch& want : reference) {
    for (int r = 0; r < 2; ++r) {
      const TokenBatch& got = ranks[r]->next();
      CHECK(std::equal(got.segment_ids.begin(), got.segment_ids.end(),
                       want.segment_ids.begin() + r * half));
      CHECK(std::equal(got.positions.begin(), got.positions.end(),
                       want.positions.begin() + r * half));
    }
  }
  // A fresh streamer restored at step 4 continues with the same segments and positions.
  TokenStreamer resumed(c);
  resumed.restore(reference[4].position);
  for (size_t k = 4; k < reference.size(); ++k) {
    const TokenBatch& got = resumed.next();
    CHECK(got.segment_ids == reference[k].segment_ids);
    CHECK(got.positions == reference[k].positions);
  }
  // Shards without an EOS id have no boundaries: refused, naming the key.
  {
    SpecialTokens no_eos = kSpecial;
    no_eos.eos = -1;
    std::vector<int32_t> tokens(400, 7);
    ShardWriter w((dir / "train-0.bin").string(), kVocab, no_eos);
    w.append(tokens.data(), tokens.size());
    w.finish();
  }
  CHECK_THROWS_WITH(TokenStreamer(c), Catch::Contains("data.document_mask"));
}
