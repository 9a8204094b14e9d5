// `meap prepare --sft --out DIR --tokenizer MODEL [options] INPUT...`: JSONL SFT records in,
// SFT shards (tokens + roles) out (the pipeline is meap::prepare_sft; this file parses the
// options and prints the summary).
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/data/sft_prepare.hpp"

namespace meap::cli {

int prepare_sft_command(const Args& args) {
  CommandLine cli(
      "meap prepare --sft",
      "Turns supervised fine-tuning records into SFT shards (tokens plus a role per token)\n"
      "for an SFT run.",
      "INPUT is a .jsonl, .jsonl.gz or .jsonl.zst file, or a directory (its files with those\n"
      "names, sorted by path, hidden ones skipped). One record per line, in any of:\n"
      "  {\"prompt\": ..., \"response\": ...}            (\"completion\" is taken for \"response\")\n"
      "  {\"instruction\": ..., \"input\": ..., \"output\": ...}             (Alpaca)\n"
      "  {\"messages\": [{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": ...}, ...]}\n"
      "  {\"conversations\": [{\"from\": \"human\"|\"gpt\"|\"system\", \"value\": ...}, ...]} (ShareGPT)\n"
      "Every assistant turn of a chat is trained. Bad records are skipped, counted and listed\n"
      "by file and line in DIR/sft-rejected.jsonl; the run fails only when none is usable.\n"
      "Details (shapes, templates, roles, policies): docs/data.md; the method: docs/sft.md.");
  SftPrepareOptions o;
  std::string overlong = "truncate_prompt";
  cli.add_positional("INPUT", o.inputs, "JSONL files (.jsonl, .jsonl.gz, .jsonl.zst) or directories");
  cli.add_out(o.out_dir,
              "output directory (created): the tokenizer, sft-train-00000.bin ...,\n"
              "sft-val-00000.bin ..., sft-prepare.json, sft-rejected.jsonl");
  cli.add_tokenizer(o.tokenizer, "the tokenizer of the model to fine-tune (required)")->required();
  cli.add_option("--template", o.template_name, "NAME",
                 "plain (default), chat, or a JSON file with system_prefix,\n"
                 "system_suffix, user_prefix, user_suffix, assistant_prefix");
  cli.add_option("--seq-len", o.seq_len, "N",
                 "a sample may have at most N + 1 tokens (default 2048); for the\n"
                 "MEAP concat layout use (data.seq_len + 1) / 2 - 1")
      ->check(at_least(1));
  cli.add_option("--overlong", overlong, "POLICY",
                 "truncate_prompt (default: drop prompt tokens from the left) or\n"
                 "drop (reject the sample)")
      ->check(CLI::IsMember({"truncate_prompt", "drop"}));
  cli.add_option("--val-fraction", o.val_fraction, "F",
                 "share of usable records held out for validation (default 0.02)");
  cli.add_option("--seed", o.seed, "S", "seed of the split (default 1234)");
  cli.add_option("--shard-tokens", o.shard_tokens, "N",
                 "at most N tokens per shard, whole samples (default 16000000)");
  cli.add_force(o.force, "replace the output of an earlier `meap prepare --sft` in DIR");
  if (const auto done = cli.parse(args)) return *done;
  o.overlong = parse_sft_overlong(overlong);
  o.on_message = [](const std::string& m) { spdlog::info("meap prepare --sft: {}", m); };
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
