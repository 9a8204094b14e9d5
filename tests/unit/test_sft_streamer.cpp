// SFT shards and the SftStreamer: shard round trip and refusals; packing (segments,
// positions restarting per document, padding only at the end); rank slices; exact resume;
// masks per epoch; documents too long for a row.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"
#include "meap/data/sft_streamer.hpp"
#include "fixtures.hpp"

namespace fs = std::filesystem;
using namespace meap;

namespace {

const SpecialTokens kSpecial{1, 2, 3, 4};  // bos, eos, pad, mask
constexpr uint32_t kVocab = 500;
constexpr uint8_t T = 0, P = 1, A = 2, E = 3;

struct Sample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> roles;
};

Sample make_sample(int n_prompt, int n_answer, int salt = 0) {
  Sample s{{1}, {T}};
  for (int i = 0; i < n_prompt; ++i) {
    s.tokens.push_back(10 + (i + salt) % 90);
    s.roles.push_back(P);
  }
  s.tokens.push_back(7);
  s.roles.push_back(T);
  for (int i = 0; i < n_answer; ++i) {
    s.tokens.push_back(100 + (i * 7 + salt) % 300);
    s.roles.push_back(A);
  }
  s.tokens.push_back(2);
  s.roles.push_back(E);
  return s;
}

// Writes the samples into shards of `per_shard` samples each.
void write_shards(const fs::path& dir, const std::vector<Sample>& samples, size_t per_shard) {
  for (size_t at = 0, k = 0; at < samples.size(); at += per_shard, ++k) {
    SftShardWriter w((dir / ("sft-train-" + std::to_string(k) + ".bin")).string(), kVocab,
                     kSpecial, 0xABCDu);
    for (size_t i = at; i < std::min(samples.size(), at + per_shard); ++i)
      w.append(samples[i].tokens.data(), samples[i].roles.data(), samples[i].tokens.size());
    w.finish();
  }
}

// A mixed set: short answers (NTP-SFT) and long ones (MEAP), lengths spread out.
std::vector<Sample> mixed_samples(int n) {
  std::vector<Sample> v;
  for (int i = 0; i < n; ++i) {
    const auto r = philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, philox_key(5));
    v.push_back(make_sample(1 + r[0] % 30, 1 + r[1] % 90, i));
  }
  return v;
}

SftStreamerConfig config(const fs::path& dir, int64_t seq_len, int64_t batch) {
  SftStreamerConfig c;
  c.pattern = (dir / "sft-train-*.bin").string();
  c.seq_len = seq_len;
  c.global_batch_size = batch;
  c.sft.mask_ratio = 0.1;
  c.sft.min_answer_tokens = 50;
  c.sft.seed = 11;
  return c;
}

// Rows as one flat vector per field, for comparisons.
struct Rows {
  std::vector<int32_t> inputs, targets, segments, positions;
  std::vector<float> weights;
  void add(const SftBatch& b, int64_t from_row, int64_t n_rows) {
    const auto a = from_row * b.seq_len, e = (from_row + n_rows) * b.seq_len;
    inputs.insert(inputs.end(), b.inputs.begin() + a, b.inputs.begin() + e);
    targets.insert(targets.end(), b.targets.begin() + a, b.targets.begin() + e);
    weights.insert(weights.end(), b.weights.begin() + a, b.weights.begin() + e);
    segments.insert(segments.end(), b.segment_ids.begin() + a, b.segment_ids.begin() + e);
    positions.insert(positions.end(), b.positions.begin() + a, b.positions.begin() + e);
  }
  bool operator==(const Rows&) const = default;
};

}  // namespace

TEST_CASE("sft shards: round trip, answer counts and the header", "[sft]") {
  const meap_test::TempDir scratch("meap_sft_shard");
  const fs::path& dir = scratch.path();
  const std::vector<Sample> samples = {make_sample(3, 4), make_sample(0, 1), make_sample(9, 60)};
  write_shards(dir, samples, 10);
  const SftShardReader r = SftShardReader::open((dir / "sft-train-0.bin").string());
  CHECK(r.info().version == kSftShardVersion);
  CHECK(r.info().token_bytes == 2);
  CHECK(r.info().vocab_size == kVocab);
  CHECK(r.info().tokenizer_checksum == 0xABCDu);
  CHECK(r.info().special.mask == 4);
  REQUIRE(r.n_samples() == 3);
  std::vector<int32_t> tokens;
  for (uint64_t i = 0; i < 3; ++i) {
    r.read_tokens(i, tokens);
    CHECK(tokens == samples[i].tokens);
    CHECK(std::vector<uint8_t>(r.roles(i), r.roles(i) + r.sample_tokens(i)) == samples[i].roles);
  }
  CHECK(r.answer_tokens(0) == 4);
  CHECK(r.answer_tokens(1) == 1);
  CHECK(r.answer_tokens(2) == 60);
  uint64_t n = 0;
  for (const Sample& s : samples) n += s.tokens.size();
  CHECK(r.info().n_tokens == n);
  // The exact size: header, tokens (padded to 8), roles (padded to 8), index.
  const auto pad8 = [](uint64_t x) { return (x + 7) / 8 * 8; };
  CHECK(fs::file_size(dir / "sft-train-0.bin") == 96 + pad8(2 * n) + pad8(n) + 8 * 4);
}

TEST_CASE("sft shards: corrupt, truncated and foreign files are refused with their path",
          "[sft]") {
  const meap_test::TempDir scratch("meap_sft_shard_bad");
  const fs::path& dir = scratch.path();
  write_shards(dir, {make_sample(3, 4), make_sample(5, 6)}, 10);
  const fs::path good = dir / "sft-train-0.bin";
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& name, const std::string& b) {
    std::ofstream(dir / name, std::ios::binary) << b;
    return (dir / name).string();
  };
  std::string flipped = bytes;
  flipped[100] ^= 1;
  CHECK_THROWS_WITH(SftShardReader::open(write("flip.bin", flipped)),
                    Catch::Contains("flip.bin") && Catch::Contains("checksum mismatch"));
  CHECK_THROWS_WITH(SftShardReader::open(write("cut.bin", bytes.substr(0, bytes.size() - 8))),
                    Catch::Contains("cut.bin") && Catch::Contains("truncated"));
  CHECK_THROWS_WITH(SftShardReader::open(write("long.bin", bytes + "x")),
                    Catch::Contains("trailing bytes"));
  std::string newer = bytes;
  newer[8] = 9;
  CHECK_THROWS_WITH(SftShardReader::open(write("newer.bin", newer)),
                    Catch::Contains("newer meap"));
  std::string token_shard = bytes;
  token_shard.replace(0, 8, std::string("MEAPTOK\0", 8));
  CHECK_THROWS_WITH(SftShardReader::open(write("tok.bin", token_shard)),
                    Catch::Contains("pre-training token shard"));
  // The writer refuses samples that could not be trained on, naming the shard.
  SftShardWriter w((dir / "w.bin").string(), kVocab, kSpecial, 0);
  Sample no_answer = make_sample(3, 0);
  CHECK_THROWS_WITH(w.append(no_answer.tokens.data(), no_answer.roles.data(), no_answer.tokens.size()),
                    Catch::Contains("w.bin") && Catch::Contains("no answer token"));
  Sample no_bos = make_sample(3, 2);
  no_bos.tokens[0] = 9;
  CHECK_THROWS_WITH(w.append(no_bos.tokens.data(), no_bos.roles.data(), no_bos.tokens.size()),
                    Catch::Contains("not BOS"));
  Sample big = make_sample(3, 2);
  big.tokens[2] = 600;
  CHECK_THROWS_WITH(w.append(big.tokens.data(), big.roles.data(), big.tokens.size()),
                    Catch::Contains("outside the vocab"));
  CHECK(w.n_samples() == 0);
}

TEST_CASE("sft streamer: documents packed in order, positions from 0, padding at the end",
          "[sft]") {
  const meap_test::TempDir scratch("meap_sft_pack");
  const fs::path& dir = scratch.path();
  // NTP documents of 5, 4 and 6 positions (samples of 6, 5 and 7 tokens).
  const std::vector<Sample> samples = {make_sample(1, 2), make_sample(1, 1), make_sample(2, 2)};
  write_shards(dir, samples, 2);  // two shards: packing crosses the shard boundary
  SftStreamerConfig c = config(dir, 12, 1);
  c.shuffle = false;
  c.prefetch = 0;
  SftStreamer s(c);
  REQUIRE(s.rows_in_epoch(0) == 2);  // [5 + 4 | pad 3], [6 | pad 6]
  const SftBatch& b0 = s.next();
  const auto& A = samples[0].tokens;
  const auto& B = samples[1].tokens;
  CHECK(b0.inputs == std::vector<int32_t>{A[0], A[1], A[2], A[3], A[4], B[0], B[1], B[2], B[3],
                                          3, 3, 3});
  CHECK(b0.targets == std::vector<int32_t>{A[1], A[2], A[3], A[4], A[5], B[1], B[2], B[3], B[4],
                                           3, 3, 3});
  CHECK(b0.weights == std::vector<float>{0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0});
  CHECK(b0.segment_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2});
  CHECK(b0.positions == std::vector<int32_t>{0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2});
  CHECK(b0.global_row == std::vector<uint64_t>{0});
  const SftBatch& b1 = s.next();
  CHECK(b1.segment_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  CHECK(b1.positions == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5});
  CHECK(b1.weights == std::vector<float>{0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0});
  CHECK(s.state() == StreamerState{1, 0});
}

TEST_CASE("sft streamer: a MEAP original and copy are one segment (concat), two (separate)",
          "[sft]") {
  const meap_test::TempDir scratch("meap_sft_pair");
  const fs::path& dir = scratch.path();
  const std::vector<Sample> samples = {make_sample(1, 60), make_sample(2, 2)};  // 64 and 7 tokens
  write_shards(dir, samples, 5);
  for (SftLayout layout : {SftLayout::concat, SftLayout::separate}) {
    SftStreamerConfig c = config(dir, 200, 1);
    c.shuffle = false;
    c.sft.layout = layout;
    SftStreamer s(c);
    REQUIRE(s.rows_in_epoch(0) == 1);
    const SftBatch& b = s.next();
    std::vector<int64_t> lengths = layout == SftLayout::concat ? std::vector<int64_t>{127, 6}
                                                               : std::vector<int64_t>{63, 63, 6};
    std::vector<int32_t> seg, pos;
    int64_t used = 0;
    for (size_t d = 0; d < lengths.size(); ++d) {
      for (int64_t p = 0; p < lengths[d]; ++p) {
        seg.push_back(static_cast<int32_t>(d));
        pos.push_back(static_cast<int32_t>(p));
      }
      used += lengths[d];
    }
    for (int64_t p = 0; p < 200 - used; ++p) {
      seg.push_back(static_cast<int32_t>(lengths.size()));
      pos.push_back(static_cast<int32_t>(p));
    }
    INFO(sft_layout_name(layout));
    CHECK(b.segment_ids == seg);
    CHECK(b.positions == pos);
    CHECK(std::count(b.inputs.begin(), b.inputs.end(), 4) == 6);  // round(0.1 * 60) [MASK]s
    // The documents are exactly the builder's, at epoch 0, sample 0 and 1.
    std::vector<int32_t> expect;
    for (uint64_t i = 0; i < 2; ++i)
      for (const SftDocument& d : s.builder().documents(samples[i].tokens.data(),
                                                         samples[i].roles.data(),
                                                         samples[i].tokens.size(), 0, i))
        expect.insert(expect.end(), d.inputs.begin(), d.inputs.end());
    CHECK(std::equal(expect.begin(), expect.end(), b.inputs.begin()));
  }
}

TEST_CASE("sft streamer: every epoch packs each sample once, in the epoch's order, masks fresh",
          "[sft]") {
  const meap_test::TempDir scratch("meap_sft_epochs");
  const fs::path& dir = scratch.path();
  const std::vector<Sample> samples = mixed_samples(120);
  write_shards(dir, samples, 50);
  for (SftLayout layout : {SftLayout::concat, SftLayout::separate}) {
    SftStreamerConfig c = config(dir, 256, 4);
    c.sft.layout = layout;
    SftStreamer s(c);
    std::map<uint64_t, std::vector<int32_t>> first_epoch;  // sample -> its inputs in epoch 0
    uint64_t meap_changed = 0, meap_samples = 0;
    for (uint64_t epoch = 0; epoch < 2; ++epoch) {
      uint64_t next_index = 0;  // epoch position of the next document's sample
      int next_part = 0;
      for (uint64_t batch = 0; batch < s.batches_in_epoch(epoch); ++batch) {
        const SftBatch& b = s.next();
        REQUIRE(b.position == StreamerState{epoch, batch});
        for (int64_t row = 0; row < b.batch_size; ++row) {
          const int64_t off = row * b.seq_len;
          int64_t at = 0;
          int32_t seg = 0;
          while (at < b.seq_len) {
            const uint64_t sample = s.sample_at(epoch, next_index);
            const Sample& smp = samples[sample];
            const auto docs = s.builder().documents(smp.tokens.data(), smp.roles.data(),
                                                    smp.tokens.size(), epoch, sample);
            const SftDocument& d = docs[next_part];
            const int64_t L = static_cast<int64_t>(d.inputs.size());
            if (at + L > b.seq_len || b.segment_ids[off + at] != seg ||
                b.weights[off + at] != d.weights[0] || b.inputs[off + at] != d.inputs[0] ||
                (at > 0 && b.positions[off + at] != 0))
              break;  // the rest of the row is padding (checked below)
            INFO("epoch " << epoch << " row " << b.global_row[row] << " sample " << sample);
            for (int64_t p = 0; p < L; ++p) {
              REQUIRE(b.inputs[off + at + p] == d.inputs[p]);
              REQUIRE(b.targets[off + at + p] == d.targets[p]);
              REQUIRE(b.weights[off + at + p] == d.weights[p]);
              REQUIRE(b.segment_ids[off + at + p] == seg);
              REQUIRE(b.positions[off + at + p] == p);
            }
            if (docs.size() == 2 || d.inputs.size() + 1 > smp.tokens.size()) {  // MEAP
              if (next_part == 0) {
                if (epoch == 0) first_epoch[sample] = docs.back().inputs;
                else if (first_epoch.count(sample)) {
                  ++meap_samples;
                  meap_changed += first_epoch[sample] != docs.back().inputs;
                }
              }
            }
            at += L;
            ++seg;
            if (++next_part == static_cast<int>(docs.size())) {
              next_part = 0;
              ++next_index;
            }
          }
          // Padding: one segment to the end, weight 0, positions from 0.
          for (int64_t p = at; p < b.seq_len; ++p) {
            REQUIRE(b.weights[off + p] == 0.0f);
            REQUIRE(b.segment_ids[off + p] == seg);
            REQUIRE(b.positions[off + p] == p - at);
            REQUIRE(b.inputs[off + p] == 3);
          }
        }
      }
      // Only the rows of an incomplete last batch are left out.
      CHECK(s.rows_in_epoch(epoch) - s.batches_in_epoch(epoch) * 4 < 4);
      if (s.rows_in_epoch(epoch) % 4 == 0) CHECK(next_index == samples.size());
    }
    INFO(sft_layout_name(layout));
    CHECK(meap_samples > 5);
    CHECK(meap_changed == meap_samples);  // every MEAP copy got new masks in epoch 1
  }
}

TEST_CASE("sft streamer: 1, 2 and 4 ranks see the same rows and a resume continues exactly",
          "[sft]") {
  const meap_test::TempDir scratch("meap_sft_ranks");
  const fs::path& dir = scratch.path();
  write_shards(dir, mixed_samples(150), 40);
  const SftStreamerConfig c = config(dir, 256, 8);
  SftStreamer one(c);
  const uint64_t steps = one.batches_in_epoch(0) + one.batches_in_epoch(1) + 2;  // 2 epochs+
  std::vector<Rows> reference;
  for (uint64_t k = 0; k < steps; ++k) {
    Rows r;
    r.add(one.next(), 0, 8);
    reference.push_back(std::move(r));
  }
  for (int world : {2, 4}) {
    std::vector<std::unique_ptr<SftStreamer>> ranks;
    for (int r = 0; r < world; ++r) {
      SftStreamerConfig rc = c;
      rc.rank = r;
      rc.world_size = world;
      rc.prefetch = r % 2 ? 0 : 3;
      ranks.push_back(std::make_unique<SftStreamer>(rc));
    }
    for (uint64_t k = 0; k < steps; ++k) {
      Rows joined;
      for (int r = 0; r < world; ++r) {
        const SftBatch& b = ranks[r]->next();
        REQUIRE(b.batch_size == 8 / world);
        joined.add(b, 0, b.batch_size);
      }
      INFO("world " << world << " step " << k);
      CHECK(joined == reference[k]);
    }
  }
  // Resume: a fresh streamer (another world size) restored at step 5 continues exactly.
  SftStreamer first(c);
  for (int k = 0; k < 5; ++k) first.next();
  const StreamerState saved = first.state();
  std::vector<std::unique_ptr<SftStreamer>> resumed;
  for (int r = 0; r < 2; ++r) {
    SftStreamerConfig rc = c;
    rc.rank = r;
    rc.world_size = 2;
    resumed.push_back(std::make_unique<SftStreamer>(rc));
    resumed.back()->restore(saved);
  }
  for (uint64_t k = 5; k < steps; ++k) {
    Rows joined;
    for (auto& r : resumed) joined.add(r->next(), 0, 4);
    INFO("resumed step " << k);
    CHECK(joined == reference[k]);
  }
}

TEST_CASE("sft streamer: documents too long for a row are refused up front", "[sft]") {
  const meap_test::TempDir scratch("meap_sft_long");
  const fs::path& dir = scratch.path();
  write_shards(dir, {make_sample(5, 60), make_sample(2, 3)}, 5);  // 68 tokens: concat 135
  SftStreamerConfig c = config(dir, 100, 1);
  CHECK_THROWS_WITH(SftStreamer(c), Catch::Contains("MEAP concat layout") &&
                                        Catch::Contains("--seq-len 49"));
  c.sft.layout = SftLayout::separate;  // 67 + 67: fits
  CHECK_NOTHROW(SftStreamer(c));
  c.seq_len = 50;
  CHECK_THROWS_WITH(SftStreamer(c), Catch::Contains("do not fit data.seq_len 50"));
  c.seq_len = 100;
  c.global_batch_size = 4;
  CHECK_THROWS_WITH(SftStreamer(c), Catch::Contains("fewer than one global batch"));
  c.pattern = (dir / "nothing-*.bin").string();
  CHECK_THROWS_WITH(SftStreamer(c), Catch::Contains("no SFT shards match"));
}
