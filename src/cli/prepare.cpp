// `meap prepare --out DIR [options] INPUT...`: a text corpus in, a tokenizer plus train/val
// token shards out (the pipeline is meap::prepare_corpus; this file parses options and draws
// the progress).
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "meap/core/human_format.hpp"
#include "meap/core/error.hpp"
#include "meap/data/prepare.hpp"

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap prepare --out DIR [options] INPUT...\n"
    "\n"
    "Turns a text corpus into a tokenizer plus train/val token shards for `meap train`.\n"
    "\n"
    "INPUT is a plain text file (documents separated by blank lines), a .jsonl file (one\n"
    "{\"text\": ...} object per line, one document each) or a directory (every file below it,\n"
    "sorted by path, hidden ones skipped). Each document is encoded and followed by EOS.\n"
    "\n"
    "options:\n"
    "  --out DIR             output directory (created): tokenizer.model, tokenizer.vocab\n"
    "                        (or tokenizer.json),\n"
    "                        train-00000.bin ..., val-00000.bin ..., prepare.json\n"
    "  --vocab-size N        train a BPE tokenizer of N pieces, reserved ids included\n"
    "                        (default 4096)\n"
    "  --tokenizer FILE      use this tokenizer instead of training one: a SentencePiece\n"
    "                        model (copied to DIR/tokenizer.model) or a Hugging Face\n"
    "                        byte-level BPE tokenizer.json (copied to DIR/tokenizer.json)\n"
    "  --val-fraction F      share of documents held out for validation, in [0, 1)\n"
    "                        (default 0.01); chosen by a hash of (seed, document number)\n"
    "  --shard-tokens N      at most N tokens per shard file (default 100000000)\n"
    "  --threads N           encoding threads (default: all cores); the output is the same\n"
    "                        bit for bit whatever N is\n"
    "  --seed S              seed of the validation split (default 1234)\n"
    "  --tokenizer-sample-bytes N\n"
    "                        train the tokenizer on at most about N bytes of text, sampled\n"
    "                        evenly over the corpus (default 1073741824)\n"
    "  --force               replace the output of an earlier run in DIR (its prepare.json\n"
    "                        and shards); without it an existing DIR/prepare.json is refused\n"
    "  --sft                 prepare supervised fine-tuning data instead (JSONL records ->\n"
    "                        SFT shards; see meap prepare --sft --help)\n"
    "  -h, --help            this text\n"
    "\n"
    "Details (document rules, split, outputs): docs/data.md.\n";

template <class T>
T parse_integer(const std::string& option, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end)
    fail(option, " expects a non-negative integer, got '", text, "'");
  return value;
}

double parse_double(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(option, " expects a number, got '", text, "'");
}




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
      std::fprintf(stderr, "meap prepare: encoded %3d%%: %s tokens, %s tok/s, ETA %s\n",
                   decile * 10, human_count(p.tokens).c_str(), human_count(rate).c_str(),
                   human_duration(eta).c_str());
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

std::string shard_names(const std::vector<ShardEntry>& shards) {
  if (shards.empty()) return "none";
  auto name = [](const ShardEntry& e) { return std::filesystem::path(e.path).filename().string(); };
  std::string s = str_cat(shards.size(), " (", name(shards.front()));
  if (shards.size() > 1) s += str_cat(" .. ", name(shards.back()));
  return s + ")";
}

}  // namespace

int prepare_command(const Args& args) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (const auto sft = std::find(args.begin(), args.end(), "--sft"); sft != args.end()) {
    Args rest(args.begin(), sft);
    rest.insert(rest.end(), sft + 1, args.end());
    return prepare_sft_command(rest);
  }
  PrepareOptions o;
  bool vocab_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--") {
      o.inputs.insert(o.inputs.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      o.inputs.push_back(arg);
      continue;
    }
    if (arg == "--force") {
      o.force = true;
      continue;
    }
    // --name=value or --name value
    std::string value;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      fail(arg, " needs a value (see meap prepare --help)");
    }
    if (arg == "--out") {
      o.out_dir = value;
    } else if (arg == "--vocab-size") {
      o.vocab_size = parse_integer<int32_t>(arg, value);
      vocab_given = true;
    } else if (arg == "--tokenizer") {
      o.tokenizer = value;
    } else if (arg == "--val-fraction") {
      o.val_fraction = parse_double(arg, value);
    } else if (arg == "--shard-tokens") {
      o.shard_tokens = parse_integer<uint64_t>(arg, value);
    } else if (arg == "--threads") {
      o.threads = parse_integer<int>(arg, value);
      if (o.threads == 0) fail("--threads must be at least 1");
    } else if (arg == "--seed") {
      o.seed = parse_integer<uint64_t>(arg, value);
    } else if (arg == "--tokenizer-sample-bytes") {
      o.tokenizer_sample_bytes = parse_integer<uint64_t>(arg, value);
    } else {
      fail("unknown option '", arg, "' (see meap prepare --help)");
    }
  }
  if (o.out_dir.empty()) fail("--out DIR is required (see meap prepare --help)");
  if (o.inputs.empty()) fail("no INPUT given: name the text, JSONL files or directories to read");
  if (vocab_given && !o.tokenizer.empty())
    fail("give either --vocab-size (train a tokenizer) or --tokenizer (use one), not both");

  ProgressBar bar;
  o.on_message = [&](const std::string& m) {
    bar.end_line();
    std::fprintf(stderr, "meap prepare: %s\n", m.c_str());
  };
  o.on_progress = [&](const PrepareProgress& p) { bar.update(p); };
  const PrepareSummary s = prepare_corpus(o);
  bar.end_line();

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
