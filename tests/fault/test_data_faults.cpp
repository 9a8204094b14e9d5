// Byte flips and truncations of what `meap prepare` writes (token shards, tokenizer.model,
// tokenizer.json, prepare.json) under the command that reads them back -- a fresh
// `meap train` -- and of SFT shards under their reader. A damaged file must be refused
// naming it; prepare.json is never read by any command (the class is counted apart, and a
// trial shows the run is the same bit for bit).
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "data/hf/byte_level.hpp"
#include "fault/fault_fixture.hpp"
#include "meap/core/error.hpp"
#include "meap/data/prepare.hpp"
#include "meap/data/sft_prepare.hpp"
#include "meap/data/sft_shard.hpp"
#include "meap/train/checkpoint.hpp"

using namespace meap_fault;

namespace {

// `meap train` of the micro config for one step into a fresh run directory, data and model
// vocabulary overridden for another corpus when given.
Ran train_one_step(const fs::path& dir, const std::vector<std::string>& overrides = {}) {
  fs::remove_all(dir / "run");
  std::vector<std::string> args = {"train", (dir / "config.yaml").string(), "train.max_steps=1"};
  args.insert(args.end(), overrides.begin(), overrides.end());
  return run_command(args, dir / "trial.log", 120);
}

double first_loss(const fs::path& run) {
  const auto lines = loss_lines(run);
  return lines.empty() ? -1.0 : lines.front().at("loss").get<double>();
}

// Flips (and truncations) of `file` under a one-step `meap train`; each must be refused
// naming the file. `offsets` are flipped first (header fields named in the issue).
void damage_under_train(Tally& tally, const fs::path& dir, const fs::path& file, int flips,
                        int truncations, std::mt19937_64& rng,
                        const std::vector<std::string>& overrides = {},
                        const std::vector<int64_t>& offsets = {}) {
  const std::string original = slurp(file);
  REQUIRE(!original.empty());
  const std::string name = file.filename().string();
  for (int i = 0; i < flips + truncations; ++i) {
    const bool flipping = i < flips;
    const int64_t at = i < static_cast<int>(offsets.size()) ? offsets[i] : -1;
    const Damage damage = flipping ? flip(original, rng, at) : truncation(original, rng);
    write_text(file, damage.bytes);
    const Ran r = train_one_step(dir, overrides);
    const std::string kind = name + (flipping ? " flip" : " truncation");
    if (clear_refusal(r, {file.string()}))
      tally.ok(kind + ": refused naming the file");
    else
      tally.fail(kind + ": used or unclear", meap::str_cat(kind, " (", damage.what, "): ",
                                                           r.describe(), "\n", tail(r.log)));
    write_text(file, original);
  }
}

// A byte-level BPE tokenizer.json with every byte as a token and no merges, EOS
// <|endoftext|> (id 256): what `meap prepare --tokenizer tokenizer.json` copies.
std::string byte_level_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b)
    vocab[meap::hf::bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  const nlohmann::json spec = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 256}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return spec.dump(2);
}

}  // namespace

TEST_CASE("damaged token shards and tokenizers are never trained on", "[fault][data]") {
  const MicroCorpus& corpus = micro_corpus();
  ScratchDir d("fault-data");
  write_micro_config(d.path);
  std::mt19937_64 rng = seeded_rng("data files");
  const fs::path data = fs::path(corpus.tokenizer).parent_path();
  const fs::path train_shard = data / "train-00000.bin", val_shard = data / "val-00000.bin";
  REQUIRE(fs::exists(train_shard));
  REQUIRE(fs::exists(val_shard));

  // The clean run, for the prepare.json trials below.
  const Ran clean = train_one_step(d.path);
  INFO(clean.log);
  REQUIRE(clean.exited(0));
  const double clean_loss = first_loss(d.path / "run");
  const std::string clean_weights =
      slurp(*meap::latest_checkpoint((d.path / "run").string()) + "/model.safetensors");

  Tally tally{"prepared data (token shards, tokenizer.model, tokenizer.json) under meap train"};
  // Every header field first (docs/formats.md): version (8), n_tokens (16), vocab_size
  // (24), bos (28), eos (32), pad (36), mask (40), reserved (44), checksum (48), tokenizer
  // checksum (56) -- the issue found bos and pad unchecked.
  damage_under_train(tally, d.path, train_shard, 48, 4, rng, {},
                     {8, 16, 24, 28, 32, 36, 40, 44, 48, 56});
  damage_under_train(tally, d.path, val_shard, 16, 2, rng, {}, {28, 36});
  damage_under_train(tally, d.path, data / "tokenizer.model", 40, 4, rng);

  // A corpus tokenized with a Hugging Face tokenizer.json.
  const fs::path hf = d.path / "hf-corpus";
  write_text(hf / "tokenizer.json", byte_level_tokenizer_json());
  write_text(hf / "text" / "corpus.txt", synthetic_text(99u, 40'000));
  meap::PrepareOptions o;
  o.out_dir = (hf / "data").string();
  o.inputs = {(hf / "text").string()};
  o.tokenizer = (hf / "tokenizer.json").string();
  o.val_fraction = 0.05;
  o.threads = 2;
  const meap::PrepareSummary s = meap::prepare_corpus(o);
  REQUIRE(s.tokenizer_path == (hf / "data" / "tokenizer.json").string());
  const std::vector<std::string> hf_overrides = {
      meap::str_cat("model.vocab_size=", s.vocab_size),
      "data.train=" + (hf / "data" / "train-*.bin").string(),
      "data.val=" + (hf / "data" / "val-*.bin").string(), "data.tokenizer=" + s.tokenizer_path};
  {
    const Ran r = train_one_step(d.path, hf_overrides);
    INFO(r.log);
    REQUIRE(r.exited(0));  // the clean tokenizer.json corpus trains
  }
  damage_under_train(tally, d.path, s.tokenizer_path, 40, 4, rng, hf_overrides);
  tally.print();
  INFO(tally.failure_list());
  CHECK(tally.failures.empty());

  // prepare.json: written for people and for `meap prepare`'s own refusal to overwrite an
  // output directory; no command parses it. A flipped one changes nothing: the same loss and
  // the same weights, bit for bit.
  Tally unread{"prepare.json (read by no command) under meap train"};
  const fs::path manifest = data / "prepare.json";
  const std::string original = slurp(manifest);
  for (int i = 0; i < 12; ++i) {
    const Damage damage = flip(original, rng);
    write_text(manifest, damage.bytes);
    const Ran r = train_one_step(d.path);
    const bool same = r.exited(0) && first_loss(d.path / "run") == clean_loss &&
                      slurp(*meap::latest_checkpoint((d.path / "run").string()) +
                            "/model.safetensors") == clean_weights;
    if (same)
      unread.ok("prepare.json flip: not read, the run is the same bit for bit");
    else
      unread.fail("prepare.json flip: changed the run",
                  meap::str_cat(damage.what, ": ", r.describe(), "\n", tail(r.log)));
    write_text(manifest, original);
  }
  unread.print();
  INFO(unread.failure_list());
  CHECK(unread.failures.empty());
}

TEST_CASE("damaged SFT shards are refused naming them", "[fault][data]") {
  const MicroCorpus& corpus = micro_corpus();
  ScratchDir d("fault-sft");
  std::mt19937_64 rng = seeded_rng("sft shards");
  // 200 prompt/response records of the corpus' words.
  {
    std::ofstream out(d.path / "records.jsonl");
    for (int i = 0; i < 200; ++i) {
      const std::string text = synthetic_text(1000u + i, 120);
      const size_t cut = text.find(' ', 30);
      out << nlohmann::json{{"prompt", text.substr(0, cut)}, {"response", text.substr(cut + 1)}}
                 .dump()
          << "\n";
    }
  }
  meap::SftPrepareOptions o;
  o.out_dir = (d.path / "sft").string();
  o.inputs = {(d.path / "records.jsonl").string()};
  o.tokenizer = corpus.tokenizer;
  o.seq_len = 128;
  o.val_fraction = 0.2;
  const meap::SftPrepareSummary s = meap::prepare_sft(o);
  INFO(s.train_samples << " train and " << s.val_samples << " val samples, "
                       << s.rejected_total() << " rejected");
  REQUIRE(!s.train_shards.empty());
  REQUIRE(!s.val_shards.empty());
  REQUIRE_NOTHROW(meap::SftShardReader::open(s.train_shards.front().path));

  // No `meap` command reads SFT shards yet (SFT training is to come): the trials call the
  // reader every consumer opens them with, checksum verification on (its default).
  Tally tally{"SFT shards under SftShardReader::open"};
  for (const std::string& path : {s.train_shards.front().path, s.val_shards.front().path}) {
    const std::string original = slurp(path);
    const bool train = path == s.train_shards.front().path;
    const int flips = train ? 40 : 12, truncations = train ? 4 : 2;
    for (int i = 0; i < flips + truncations; ++i) {
      const bool flipping = i < flips;
      const Damage damage = flipping ? flip(original, rng) : truncation(original, rng);
      write_text(path, damage.bytes);
      const std::string kind = std::string("SFT shard") + (flipping ? " flip" : " truncation");
      std::string outcome;
      try {
        meap::SftShardReader::open(path);
        outcome = "accepted";
      } catch (const meap::Error& e) {
        outcome = contains(e.what(), path) ? "" : std::string("unnamed: ") + e.what();
      } catch (const std::exception& e) {
        outcome = std::string("not a meap::Error: ") + e.what();
      }
      if (outcome.empty())
        tally.ok(kind + ": refused naming the file");
      else
        tally.fail(kind + ": " + outcome, damage.what);
      write_text(path, original);
    }
  }
  tally.print();
  INFO(tally.failure_list());
  CHECK(tally.failures.empty());
}
