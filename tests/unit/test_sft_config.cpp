// The `sft:` section of a run config and the batches an SFT run reads: the keys and their
// refusals, the choice between token and SFT shards, and validation without masks.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "meap/core/error.hpp"
#include "meap/data/sft_shard.hpp"
#include "meap/train/batch_source.hpp"
#include "meap/train/config.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using meap::Config;
using meap::parse_config;

namespace {

const std::string kModel = R"(
model: {vocab_size: 500, dim: 32, n_layers: 1, n_heads: 2, ffn_dim: 64, max_seq_len: 256}
)";

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides) {
  try {
    parse_config(yaml, overrides, "test.yaml");
  } catch (const meap::Error& e) {
    return e.what();
  }
  FAIL("expected meap::Error, but the config was accepted");
  return "";
}

}  // namespace

TEST_CASE("sft config: the keys, their defaults and the SftOptions they give", "[config][sft]") {
  const Config d = parse_config(kModel);
  CHECK_FALSE(meap::is_sft_run(d));
  CHECK(d.sft.mask_ratio == 0.1);
  CHECK(d.sft.min_answer_tokens == 50);
  CHECK(d.sft.layout == meap::SftLayout::concat);
  CHECK(d.sft.mask_scope == meap::SftMaskScope::answer);
  CHECK(d.train.max_epochs == 0);

  const Config c = parse_config(kModel + R"(
sft: {train: 'sft/sft-train-*.bin', val: 'sft/sft-val-*.bin', mask_ratio: 0.25,
      min_answer_tokens: 7, layout: separate, mask_scope: all}
train: {max_epochs: 2}
)");
  CHECK(meap::is_sft_run(c));
  CHECK(c.sft.train == "sft/sft-train-*.bin");
  CHECK(c.sft.val == "sft/sft-val-*.bin");
  CHECK(c.train.max_epochs == 2);
  const meap::SftOptions t = meap::sft_options(c.sft, 99, true);
  CHECK(t.mask_ratio == 0.25);
  CHECK(t.min_answer_tokens == 7);
  CHECK(t.layout == meap::SftLayout::separate);
  CHECK(t.mask_scope == meap::SftMaskScope::all);
  CHECK(t.seed == 99);
  CHECK(meap::sft_options(c.sft, 99, false).mask_ratio == 0.0);  // validation: no masks

  // Printed by name and read back equal; a change shows in the differences a resume lists.
  const std::string yaml = meap::config_to_yaml(c);
  CHECK_THAT(yaml, Contains("layout: separate") && Contains("mask_scope: all"));
  CHECK(parse_config(yaml) == c);
  const auto diff = meap::config_schema().differences(c, parse_config(yaml, {"sft.mask_ratio=0"}));
  REQUIRE(diff.size() == 1);
  CHECK_THAT(diff.front(), Contains("sft.mask_ratio"));
}

TEST_CASE("sft config: refusals name the key", "[config][sft]") {
  const std::string sft = "sft.train=sft/sft-train-*.bin";
  // Token shards and SFT shards in one run.
  std::string msg = error_of(kModel, {"data.train=data/train-*.bin", sft});
  CHECK_THAT(msg, Contains("data.train") && Contains("sft.train") && Contains("not both"));
  // SFT validation without SFT training, token validation in an SFT run.
  CHECK_THAT(error_of(kModel, {"sft.val=v-*.bin"}), Contains("sft.val") && Contains("sft.train"));
  CHECK_THAT(error_of(kModel, {sft, "data.val=data/val-*.bin"}),
             Contains("data.val") && Contains("sft.val"));
  // Choices list their names.
  CHECK_THAT(error_of(kModel, {"sft.layout=interleaved"}),
             Contains("sft.layout") && Contains("concat, separate"));
  CHECK_THAT(error_of(kModel, {"sft.mask_scope=prompt"}),
             Contains("sft.mask_scope") && Contains("answer, all"));
  // mask_ratio in [0, 1).
  for (const char* bad : {"1", "1.5", "-0.1"}) {
    INFO(bad);
    CHECK_THAT(error_of(kModel, {std::string("sft.mask_ratio=") + bad}),
               Contains("sft.mask_ratio") && Contains("[0, 1)"));
  }
  CHECK_NOTHROW(parse_config(kModel, {"sft.mask_ratio=0"}));
  CHECK_NOTHROW(parse_config(kModel, {"sft.mask_ratio=0.99"}));
  CHECK_THAT(error_of(kModel, {"sft.min_answer_tokens=-1"}), Contains("sft.min_answer_tokens"));
  CHECK_THAT(error_of(kModel, {"train.max_epochs=-1"}), Contains("train.max_epochs"));
  CHECK_THAT(error_of(kModel, {"train.max_epochs=2147483648"}), Contains("train.max_epochs"));
  // Strict types and did-you-mean, as in every section.
  CHECK_THAT(error_of(kModel, {"sft.min_answer_tokens='5'"}), Contains("sft.min_answer_tokens"));
  CHECK_THAT(error_of(kModel, {"sft.mask_ratoi=0.1"}), Contains("sft.mask_ratio"));
}

namespace {

// 32 samples of 16 tokens: BOS, 5 prompt tokens, a separator, 8 answer tokens, EOS.
constexpr int kSamples = 32, kAnswer = 8;
const meap::SpecialTokens kSpecial{1, 2, 3, 4};  // bos, eos, pad, mask

void write_sft_shard(const fs::path& path) {
  meap::SftShardWriter w(path.string(), 500, kSpecial, 0x1234u);
  for (int s = 0; s < kSamples; ++s) {
    std::vector<int32_t> tokens = {1};
    std::vector<uint8_t> roles = {0};
    const auto add = [&](int32_t token, uint8_t role) {
      tokens.push_back(token);
      roles.push_back(role);
    };
    for (int i = 0; i < 5; ++i) add(10 + (s + i) % 50, 1);  // prompt
    add(7, 0);                                             // the template's separator
    for (int i = 0; i < kAnswer; ++i) add(100 + (s * 3 + i) % 300, 2);
    add(2, 3);  // EOS closing the answer
    w.append(tokens.data(), roles.data(), tokens.size());
  }
  w.finish();
}

// Every batch of epoch 0: (mask tokens among the inputs, total loss weight).
std::pair<int64_t, double> scan_epoch(meap::BatchSource& source) {
  int64_t masks = 0;
  double weight = 0;
  for (uint64_t b = 0; b < source.batches_in_epoch(0); ++b) {
    const meap::BatchView v = source.next();
    REQUIRE(v.segment_ids != nullptr);  // packed rows always carry their documents
    REQUIRE(v.positions != nullptr);
    for (int64_t i = 0; i < v.batch_size * v.seq_len; ++i) {
      masks += v.inputs[i] == kSpecial.mask;
      weight += v.weights[i];
    }
  }
  return {masks, weight};
}

}  // namespace

TEST_CASE("sft config: validation reads held-out answers in the NTP layout, without masks",
          "[sft]") {
  const fs::path dir = fs::temp_directory_path() / ("meap_sft_config-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_sft_shard(dir / "sft-train-0.bin");
  write_sft_shard(dir / "sft-val-0.bin");
  // P = 0.5: 4 of each 8-token answer masked in training, so masks cannot be missed.
  const Config c = parse_config(
      kModel, {"sft.train=" + (dir / "sft-train-*.bin").string(),
               "sft.val=" + (dir / "sft-val-*.bin").string(), "sft.mask_ratio=0.5",
               "sft.min_answer_tokens=0", "data.seq_len=64", "train.global_batch_size=4",
               "train.micro_batch_size=2"});

  // Training: MEAP concat documents of 31 positions, two to a row; each sample weighs its 8
  // answer tokens and EOS, plus the 4 masked positions of its copy.
  const auto train = meap::open_batch_source(c, true, 0, 1);
  CHECK(train->identity().key == "sft.train");
  const auto [train_masks, train_weight] = scan_epoch(*train);
  const int64_t train_samples = train->batches_in_epoch(0) * 4 * 2;
  CHECK(train_masks == train_samples * 4);
  CHECK(train_weight == train_samples * (kAnswer + 1 + 4));

  // Validation: NTP documents of 15 positions, four to a row (32 samples = 8 rows = 2
  // batches): no [MASK], and the weight is exactly the answers and their EOS.
  const auto val = meap::open_batch_source(c, false, 0, 1);
  REQUIRE(val);
  CHECK(val->identity().key == "sft.val");
  REQUIRE(val->batches_in_epoch(0) == 2);
  const auto [val_masks, val_weight] = scan_epoch(*val);
  CHECK(val_masks == 0);
  CHECK(val_weight == kSamples * (kAnswer + 1));

  // No sft.val: no validation source; no training shards at all: refused naming the keys.
  CHECK(meap::open_batch_source(parse_config(kModel, {"sft.train=" + (dir / "sft-train-*.bin").string(),
                                                      "data.seq_len=64", "train.global_batch_size=4",
                                                      "train.micro_batch_size=2"}),
                                false, 0, 1) == nullptr);
  CHECK_THROWS_WITH(meap::open_batch_source(parse_config(kModel), true, 0, 1),
                    Contains("data.train") && Contains("sft.train"));
  fs::remove_all(dir);
}
