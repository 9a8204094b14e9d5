// meap::train refuses configs that cannot work with a message naming the key (DESIGN.md
// invariant 4), before it touches the run directory.
#include <catch2/catch.hpp>

#include <fstream>

#include "meap/backend/backend.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/train/trainer.hpp"
#include "train_fixture.hpp"

using namespace meap_test;
using Catch::Matchers::Contains;

namespace {

// The message meap::train throws for cfg ("" when it throws none, or not a meap::Error).
std::string train_error(const meap::Config& cfg) {
  try {
    meap::train(cfg, quiet());
  } catch (const meap::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a meap::Error: ") + e.what();
  }
  return "";
}

// The second corpus, with another vocabulary, for mixing tokenizer and shards.
const MicroCorpus& other_corpus() {
  static const MicroCorpus c = make_corpus("corpus-320", 320, 60'000, 7u);
  return c;
}

}  // namespace

TEST_CASE("train: model.vocab_size must match the tokenizer's and the shards'",
          "[trainer][config]") {
  ScratchDir d("config-vocab");
  const fs::path run = d.path / "run";
  const int32_t vocab = micro_corpus().vocab_size;

  SECTION("tokenizer") {
    const std::string msg =
        train_error(micro_config(run, {meap::str_cat("model.vocab_size=", vocab + 12)}));
    CHECK_THAT(msg, Contains("model.vocab_size"));
    CHECK_THAT(msg, Contains(std::to_string(vocab)));
    CHECK_THAT(msg, Contains("data.tokenizer"));
  }
  SECTION("shards made with another tokenizer") {
    meap::Config cfg = micro_config(run);
    cfg.data.train = other_corpus().train_glob;  // vocab 320, the tokenizer and model 300
    const std::string msg = train_error(cfg);
    CHECK_THAT(msg, Contains("model.vocab_size"));
    CHECK_THAT(msg, Contains("data.train"));
    CHECK_THAT(msg, Contains(std::to_string(other_corpus().vocab_size)));
  }
  SECTION("validation shards") {
    meap::Config cfg = micro_config(run);
    cfg.data.val = other_corpus().val_glob;
    const std::string msg = train_error(cfg);
    CHECK_THAT(msg, Contains("model.vocab_size"));
    CHECK_THAT(msg, Contains("data.val"));
  }
  CHECK_FALSE(fs::exists(run / "checkpoints"));
}

TEST_CASE("train: a data.train glob matching nothing is refused naming it", "[trainer][config]") {
  ScratchDir d("config-glob");
  const fs::path run = d.path / "run";
  const std::string pattern = (d.path / "no-such-dir" / "train-*.bin").string();
  const std::string msg = train_error(micro_config(run, {"data.train=" + pattern}));
  CHECK_THAT(msg, Contains(pattern));
  CHECK_THAT(msg, Contains("data.train"));

  meap::Config empty = micro_config(run);
  empty.data.train.clear();
  CHECK_THAT(train_error(empty), Contains("data.train"));
  CHECK_FALSE(fs::exists(run / "checkpoints"));
}

TEST_CASE("train: data.seq_len beyond model.max_seq_len is refused naming both",
          "[trainer][config]") {
  ScratchDir d("config-seq");
  const fs::path run = d.path / "run";
  // Through the config reader (the override path of `meap train`) ...
  try {
    micro_config(run, {"data.seq_len=64"});
    FAIL("parse_config accepted data.seq_len=64 with model.max_seq_len=32");
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains("data.seq_len"));
    CHECK_THAT(e.what(), Contains("model.max_seq_len"));
  }
  // ... and a Config built in code reaches meap::train directly.
  meap::Config cfg = micro_config(run);
  cfg.data.seq_len = 64;
  const std::string msg = train_error(cfg);
  CHECK_THAT(msg, Contains("data.seq_len"));
  CHECK_THAT(msg, Contains("model.max_seq_len"));
}

TEST_CASE("train: a global batch not divisible by the micro batch is refused naming both",
          "[trainer][config]") {
  ScratchDir d("config-batch");
  const fs::path run = d.path / "run";
  try {
    micro_config(run, {"train.global_batch_size=10"});
    FAIL("parse_config accepted global batch 10 with micro batch 4");
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains("train.global_batch_size"));
    CHECK_THAT(e.what(), Contains("train.micro_batch_size"));
  }
  meap::Config cfg = micro_config(run);
  cfg.train.global_batch_size = 10;
  const std::string msg = train_error(cfg);
  CHECK_THAT(msg, Contains("train.global_batch_size"));
  CHECK_THAT(msg, Contains("train.micro_batch_size"));
  CHECK_FALSE(fs::exists(run / "checkpoints"));
}

TEST_CASE("train: the CLI reports a config error with a non-zero exit naming the key",
          "[trainer][config]") {
  ScratchDir d("config-cli");
  const fs::path config = write_micro_config(d.path);
  const int status = run_meap({"train", config.string(), "model.vocab_size=512"}, d.path / "log");
  const std::string log = slurp(d.path / "log");
  INFO(log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK_THAT(log, Contains("model.vocab_size"));
  CHECK_FALSE(fs::exists(d.path / "run" / "checkpoints"));
}

TEST_CASE("train: resuming with another model shape is refused", "[trainer][config]") {
  const SingleThreaded single_threaded;
  ScratchDir d("config-shape");
  const fs::path run = d.path / "run";
  meap::train(micro_config(run, {"train.max_steps=1"}), quiet());
  meap::TrainerOptions resume = quiet();
  resume.resume = true;
  std::string msg;
  try {
    meap::train(micro_config(run, {"train.max_steps=2", "model.ffn_dim=96"}), resume);
  } catch (const meap::Error& e) {
    msg = e.what();
  }
  CHECK_THAT(msg, Contains("model shape"));
  CHECK_THAT(msg, Contains("step-00000001"));
  CHECK(loss_lines(run).size() == 1);  // nothing trained on top of it
}

TEST_CASE("train: train.precision=bf16 without a GPU is refused naming the key",
          "[trainer][config][precision]") {
  ScratchDir d("config-bf16");
  const fs::path run = d.path / "run";
  // train.device=cpu (the micro config's): the config itself says what to do.
  try {
    micro_config(run, {"train.precision=bf16"});
    FAIL("bf16 with train.device=cpu must be refused");
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains("train.precision=bf16"));
    CHECK_THAT(e.what(), Contains("train.device=cuda"));
  }
  // train.device=auto is decided when the backend is chosen.
  if (meap::cuda_available()) {
    WARN("SKIPPED the device=auto half: a GPU is visible, so auto may pick CUDA");
    return;
  }
  const std::string msg =
      train_error(micro_config(run, {"train.precision=bf16", "train.device=auto"}));
  CHECK_THAT(msg, Contains("train.precision=bf16"));
  CHECK_THAT(msg, Contains("train.precision=auto"));
  CHECK_FALSE(fs::exists(run / "checkpoints"));
}

TEST_CASE("inspect: train.recompute lowers the activation bytes it prints",
          "[trainer][recompute]") {
  ScratchDir d("inspect-recompute");
  const std::string config = std::string(MEAP_SOURCE_DIR) + "/configs/tinyllama-1.1b.yaml";
  // "activation_bytes N" of `meap inspect CONFIG overrides...`.
  const auto activation_bytes = [&](const std::string& recompute) -> long long {
    const fs::path log = d.path / ("inspect-" + recompute);
    const int status = run_meap({"inspect", config, "train.recompute=" + recompute}, log);
    const std::string out = slurp(log);
    INFO(out);
    REQUIRE(status == 0);
    const auto at = out.find("activation_bytes ");
    REQUIRE(at != std::string::npos);
    return std::stoll(out.substr(at + 17));
  };
  const long long none = activation_bytes("none"), mlp = activation_bytes("mlp"),
                  att = activation_bytes("attention"), all = activation_bytes("all");
  CHECK(mlp < none);
  CHECK(att < none);
  CHECK(all < mlp);
  CHECK(all < att);
}

TEST_CASE("train: data.tokenizer must be the very file the shards were made with",
          "[trainer][config]") {
  ScratchDir d("config-tokenizer-checksum");
  const fs::path run = d.path / "run";
  // The same model with one unknown protobuf field appended (field 1023, varint 1): it loads
  // as the same vocabulary with the same ids, but it is not the file the shards name.
  const fs::path copy = d.path / "tokenizer.model";
  fs::copy_file(micro_corpus().tokenizer, copy);
  {
    std::ofstream out(copy, std::ios::binary | std::ios::app);
    out.write("\xF8\x3F\x01", 3);
  }
  const meap::Tokenizer reloaded = meap::Tokenizer::load(copy.string());
  REQUIRE(reloaded.vocab_size() == micro_corpus().vocab_size);
  meap::Config cfg = micro_config(run);
  cfg.data.tokenizer = copy.string();
  const std::string msg = train_error(cfg);
  CHECK_THAT(msg, Contains("data.train") && Contains(copy.string()) && Contains("xxh3-64:") &&
                      Contains("different files"));
  CHECK_FALSE(fs::exists(run / "checkpoints"));
}
