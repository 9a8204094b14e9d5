// `meap prepare --sft --out DIR --tokenizer MODEL [options] INPUT...`: JSONL SFT records in,
// SFT shards (tokens + roles) out (the pipeline is meap::prepare_sft; this file parses the
// options and prints the summary).
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "meap/core/error.hpp"
#include "meap/data/sft_prepare.hpp"

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap prepare --sft --out DIR --tokenizer MODEL [options] INPUT...\n"
    "\n"
    "Turns supervised fine-tuning records into SFT shards (tokens plus a role per token) for\n"
    "an SFT run. INPUT is a .jsonl, .jsonl.gz or .jsonl.zst file, or a directory (its files\n"
    "with those names, sorted by path, hidden ones skipped). One record per line, in any of:\n"
    "  {\"prompt\": ..., \"response\": ...}            (\"completion\" is taken for \"response\")\n"
    "  {\"instruction\": ..., \"input\": ..., \"output\": ...}             (Alpaca)\n"
    "  {\"messages\": [{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": ...}, ...]}\n"
    "  {\"conversations\": [{\"from\": \"human\"|\"gpt\"|\"system\", \"value\": ...}, ...]} (ShareGPT)\n"
    "Every assistant turn of a chat is trained. Bad records are skipped, counted and listed\n"
    "by file and line in DIR/sft-rejected.jsonl; the run fails only when none is usable.\n"
    "\n"
    "options:\n"
    "  --out DIR             output directory (created): tokenizer.model, sft-train-00000.bin\n"
    "                        ..., sft-val-00000.bin ..., sft-prepare.json, sft-rejected.jsonl\n"
    "  --tokenizer MODEL     the SentencePiece model of the model to fine-tune (required)\n"
    "  --template NAME       plain (default), chat, or a JSON file with system_prefix,\n"
    "                        system_suffix, user_prefix, user_suffix, assistant_prefix\n"
    "  --seq-len N           a sample may have at most N + 1 tokens (default 2048); for the\n"
    "                        MEAP concat layout use (data.seq_len + 1) / 2 - 1\n"
    "  --overlong POLICY     truncate_prompt (default: drop prompt tokens from the left) or\n"
    "                        drop (reject the sample)\n"
    "  --val-fraction F      share of usable records held out for validation (default 0.02)\n"
    "  --seed S              seed of the split (default 1234)\n"
    "  --shard-tokens N      at most N tokens per shard, whole samples (default 16000000)\n"
    "  --force               replace the output of an earlier `meap prepare --sft` in DIR\n"
    "  -h, --help            this text\n"
    "\n"
    "Details (shapes, templates, roles, policies): docs/data.md; the method: docs/sft.md.\n";

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

std::string shard_names(const std::vector<ShardEntry>& shards) {
  if (shards.empty()) return "none";
  auto name = [](const ShardEntry& e) { return std::filesystem::path(e.path).filename().string(); };
  std::string s = str_cat(shards.size(), " (", name(shards.front()));
  if (shards.size() > 1) s += str_cat(" .. ", name(shards.back()));
  return s + ")";
}

}  // namespace

int prepare_sft_command(const Args& args) {
  SftPrepareOptions o;
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
    std::string value;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      fail(arg, " needs a value (see meap prepare --sft --help)");
    }
    if (arg == "--out") o.out_dir = value;
    else if (arg == "--tokenizer") o.tokenizer = value;
    else if (arg == "--template") o.template_name = value;
    else if (arg == "--seq-len") o.seq_len = parse_integer<int64_t>(arg, value);
    else if (arg == "--overlong") o.overlong = parse_sft_overlong(value);
    else if (arg == "--val-fraction") o.val_fraction = parse_double(arg, value);
    else if (arg == "--seed") o.seed = parse_integer<uint64_t>(arg, value);
    else if (arg == "--shard-tokens") o.shard_tokens = parse_integer<uint64_t>(arg, value);
    else fail("unknown option '", arg, "' for meap prepare --sft (see meap prepare --sft --help)");
  }
  if (o.out_dir.empty()) fail("--out DIR is required (see meap prepare --sft --help)");
  if (o.inputs.empty()) fail("no INPUT given: name the JSONL files or directories to read");
  o.on_message = [](const std::string& m) { std::fprintf(stderr, "meap prepare --sft: %s\n", m.c_str()); };
  o.max_listed_rejects = 10;
  const SftPrepareSummary s = prepare_sft(o);

  std::printf("prepared   %s (SFT)\n", o.out_dir.c_str());
  std::printf("inputs     %zu file%s, %lu records\n", s.input_files.size(),
              s.input_files.size() == 1 ? "" : "s", static_cast<unsigned long>(s.records));
  std::printf("tokenizer  %s: vocab %d, bos %d, eos %d, pad %d, [MASK] %d\n",
              s.tokenizer_path.c_str(), s.vocab_size, s.special.bos, s.special.eos, s.special.pad,
              s.special.mask);
  std::printf("samples    train %lu, val %lu; %lu with answers over 50 tokens; %lu prompts "
              "truncated\n",
              static_cast<unsigned long>(s.train_samples), static_cast<unsigned long>(s.val_samples),
              static_cast<unsigned long>(s.answers_over_50), static_cast<unsigned long>(s.truncated));
  std::printf("tokens     train %lu (%lu answer), val %lu (%lu answer)\n",
              static_cast<unsigned long>(s.train_tokens),
              static_cast<unsigned long>(s.train_answer_tokens),
              static_cast<unsigned long>(s.val_tokens),
              static_cast<unsigned long>(s.val_answer_tokens));
  std::printf("rejected   %lu", static_cast<unsigned long>(s.rejected_total()));
  for (int k = 0; k < kSftRejectKinds; ++k)
    if (s.rejected[k])
      std::printf(", %lu %s", static_cast<unsigned long>(s.rejected[k]),
                  sft_reject_kind_name(static_cast<SftRejectKind>(k)));
  std::printf("\n");
  for (const SftReject& r : s.rejects)
    std::printf("  %s:%lu: %s: %s\n", r.file.c_str(), static_cast<unsigned long>(r.line),
                sft_reject_kind_name(r.kind), r.message.c_str());
  if (s.rejected_total() > s.rejects.size())
    std::printf("  ... all %lu in %s\n", static_cast<unsigned long>(s.rejected_total()),
                s.rejects_path.c_str());
  std::printf("shards     train %s, val %s\n", shard_names(s.train_shards).c_str(),
              shard_names(s.val_shards).c_str());
  std::printf("elapsed    %.2f s\n", s.seconds);
  std::printf("manifest   %s\n", s.manifest_path.c_str());
  return 0;
}

}  // namespace meap::cli
