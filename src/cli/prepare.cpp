// `meap prepare --out DIR [options] INPUT...`: a text corpus in, a tokenizer plus train/val
// token shards out (the pipeline is meap::prepare_corpus; this file parses options and draws
// the progress).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/human_format.hpp"
#include "meap/data/prepare.hpp"
#include "meap/train/config.hpp"

namespace meap::cli {

namespace {

// Encoding progress on stderr: a redrawn bar at most 4 times a second on a terminal, a log
// line every 10% otherwise (so logs of batch jobs stay short).
class ProgressBar {
 public:
  ProgressBar() : tty_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressBar() { end_line(); }

  void update(const PrepareProgress& p) {
    const double frac =
        p.bytes_total ? std::min(1.0, double(p.bytes_done) / double(p.bytes_total)) : 1.0;
    const double rate = p.seconds > 0 ? p.tokens / p.seconds : 0;
    const double eta = frac > 0 ? p.seconds * (1 - frac) / frac : 0;
    if (tty_) {
      const auto now = std::chrono::steady_clock::now();
      if (drawn_ && frac < 1.0 && now - last_ < std::chrono::milliseconds(250)) return;
      last_ = now;
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(frac * kWidth);
      std::string bar(filled, '#');
      bar.resize(kWidth, '-');
      std::fprintf(stderr, "\r  encoding [%s] %5.1f%%  %s tokens  %s tok/s  ETA %s\x1b[K",
                   bar.c_str(), 100 * frac, human_count(p.tokens).c_str(),
                   human_count(rate).c_str(), human_duration(eta).c_str());
      std::fflush(stderr);
      drawn_ = true;
    } else {
      const int decile = static_cast<int>(frac * 10);
      if (decile <= last_decile_) return;
      last_decile_ = decile;
      spdlog::info("meap prepare: encoded {:3}%: {} tokens, {} tok/s, ETA {}", decile * 10,
                   human_count(p.tokens), human_count(rate), human_duration(eta));
    }
  }

  // Ends a drawn bar's line, so what follows starts on its own.
  void end_line() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  bool tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
  int last_decile_ = 0;
};

// Sequences of seq_len the streamer cuts from `tokens` (consecutive ones share a token).
uint64_t sequences_of(uint64_t tokens, int64_t seq_len) {
  return tokens > 0 ? (tokens - 1) / static_cast<uint64_t>(seq_len) : 0;
}

// `meap train` refuses a split with fewer sequences than one global batch; say so now, with
// the numbers, rather than after the user has moved on to training.
void warn_if_too_small(const PrepareSummary& s, const Config& c, const std::string& name) {
  const auto check = [&](const char* split, uint64_t tokens) {
    const uint64_t n = sequences_of(tokens, c.data.seq_len);
    if (n >= static_cast<uint64_t>(c.train.global_batch_size)) return;
    spdlog::warn(
        "meap prepare: the {} split holds {} tokens = {} sequences of data.seq_len {}, fewer "
        "than one global batch of {} of {}: meap train will refuse it ({})",
        split, tokens, n, c.data.seq_len, c.train.global_batch_size, name,
        std::string(split) == "val" ? "raise --val-fraction or add text"
                                    : "add text or lower train.global_batch_size");
  };
  check("train", s.train_tokens);
  check("val", s.val_tokens);
}

}  // namespace

int prepare_command(const Args& args) {
  // `meap prepare --sft ...` is its own command line (prepare_sft.cpp).
  if (const auto sft = std::find(args.begin(), args.end(), "--sft"); sft != args.end()) {
    Args rest(args.begin(), sft);
    rest.insert(rest.end(), sft + 1, args.end());
    return prepare_sft_command(rest);
  }
  CommandLine cli(
      "meap prepare",
      "Turns a text corpus into a tokenizer plus train/val token shards for `meap train`.",
      "Each document is encoded and followed by EOS. Details (document rules, split,\n"
      "outputs): docs/data.md.");
  PrepareOptions o;
  cli.add_positional("INPUT", o.inputs,
                     "a plain text file (documents separated by blank lines), a .jsonl file\n"
                     "(one {\"text\": ...} object per line, one document each) or a directory\n"
                     "(every file below it, sorted by path, hidden ones skipped); files\n"
                     "ending in .gz or .zst are decompressed (data.jsonl.zst is JSONL)");
  cli.add_option("--jsonl-field", o.jsonl_field, "NAME",
                 "the string field of each JSONL record that holds its document\n"
                 "(default text)");
  cli.add_out(o.out_dir,
              "output directory (created): tokenizer.model, tokenizer.vocab\n"
              "(or tokenizer.json), train-00000.bin ..., val-00000.bin ..., prepare.json");
  CLI::Option* vocab = cli.add_option("--vocab-size", o.vocab_size, "N",
                                      "train a BPE tokenizer of N pieces, reserved ids included\n"
                                      "(default 4096)");
  cli.add_tokenizer(o.tokenizer,
                    "use this tokenizer instead of training one: a SentencePiece\n"
                    "model (copied to DIR/tokenizer.model) or a Hugging Face\n"
                    "byte-level BPE tokenizer.json (copied to DIR/tokenizer.json)")
      ->excludes(vocab);
  cli.add_option("--val-fraction", o.val_fraction, "F",
                 "share of documents held out for validation, in [0, 1)\n"
                 "(default 0.01); chosen by a hash of (seed, document number)");
  cli.add_option("--shard-tokens", o.shard_tokens, "N",
                 "at most N tokens per shard file (default 100000000)");
  cli.add_option("--threads", o.threads, "N",
                 "encoding threads, >= 1 (default: all cores); the output is the same\n"
                 "bit for bit whatever N is")
      ->check(at_least(1));
  cli.add_option("--seed", o.seed, "S", "seed of the validation split (default 1234)");
  cli.add_option("--tokenizer-sample-bytes", o.tokenizer_sample_bytes, "N",
                 "train the tokenizer on at most about N bytes of text, sampled\n"
                 "evenly over the corpus (default 1073741824)");
  cli.add_force(o.force,
                "replace the output of an earlier run in DIR (its prepare.json\n"
                "and shards); without it an existing DIR/prepare.json is refused");
  std::string config_path;
  cli.add_option("--config", config_path, "CONFIG.yaml",
                 "warn when a split holds fewer sequences than one global batch of\n"
                 "this config (default: the built-in defaults, docs/configs.md)");
  bool sft = false;  // listed in --help; handled above
  cli.app().add_flag("--sft", sft,
                     "prepare supervised fine-tuning data instead (JSONL records ->\n"
                     "SFT shards; see meap prepare --sft --help)");
  if (const auto done = cli.parse(args)) return *done;

  ProgressBar bar;
  o.on_message = [&](const std::string& m) {
    bar.end_line();
    spdlog::info("meap prepare: {}", m);
  };
  o.on_progress = [&](const PrepareProgress& p) { bar.update(p); };
  // Read first: a bad config is refused before any work.
  const Config config = config_path.empty() ? Config{} : load_config(config_path);
  const std::string config_name =
      config_path.empty() ? std::string("the default config") : config_path;
  std::error_code ec;
  const bool out_existed = std::filesystem::exists(o.out_dir, ec);
  PrepareSummary s;
  try {
    s = prepare_corpus(o);
  } catch (...) {
    // An output directory this run created holds nothing worth keeping when it failed.
    if (!out_existed) std::filesystem::remove_all(o.out_dir, ec);
    throw;
  }
  bar.end_line();
  warn_if_too_small(s, config, config_name);

  const double tokens = static_cast<double>(s.train_tokens + s.val_tokens);
  std::printf("prepared   %s\n", o.out_dir.c_str());
  std::printf("inputs     %zu file%s, %s\n", s.input_files.size(),
              s.input_files.size() == 1 ? "" : "s", human_bytes(s.input_bytes).c_str());
  std::printf("tokenizer  %s (%s): vocab %d, bos %d, eos %d, pad %d, [MASK] %d\n",
              s.tokenizer_path.c_str(), s.tokenizer_trained ? "trained" : "copied", s.vocab_size,
              s.special.bos, s.special.eos, s.special.pad, s.special.mask);
  std::printf("documents  train %lu, val %lu", static_cast<unsigned long>(s.train_documents),
              static_cast<unsigned long>(s.val_documents));
  if (s.empty_documents)
    std::printf(" (%lu empty dropped)", static_cast<unsigned long>(s.empty_documents));
  std::printf("\ntokens     train %lu, val %lu (EOS included)\n",
              static_cast<unsigned long>(s.train_tokens), static_cast<unsigned long>(s.val_tokens));
  std::printf("baseline   unigram entropy of the train tokens: %.4f nats/token\n",
              s.train_unigram_entropy);
  std::printf("shards     train %s, val %s\n", shard_names(s.train_shards).c_str(),
              shard_names(s.val_shards).c_str());
  std::printf("elapsed    %.2f s (tokenizer %.2f s, encoding %.2f s on %d thread%s)\n",
              s.seconds_total, s.seconds_tokenizer, s.seconds_encode, s.threads,
              s.threads == 1 ? "" : "s");
  std::printf("throughput %s tokens/s (encoding)\n",
              human_count(s.seconds_encode > 0 ? tokens / s.seconds_encode : 0).c_str());
  std::printf("manifest   %s\n", s.manifest_path.c_str());
  return 0;
}

}  // namespace meap::cli
