// The `meap prepare --sft` pipeline: JSONL records (plain, .gz or .zst) in, SFT shards
// (tokens + roles) for train and val, the tokenizer, a manifest and a list of the rejected
// records out (docs/data.md, "SFT data"). Deterministic: the same inputs and options give
// the same files bit for bit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "meap/data/prepare.hpp"  // ShardEntry
#include "meap/data/sft_records.hpp"

namespace meap {

struct SftPrepareOptions {
  std::string out_dir;              // created when missing
  std::vector<std::string> inputs;  // .jsonl / .jsonl.gz / .jsonl.zst files, or directories
  std::string tokenizer;            // the SentencePiece model of the model to fine-tune
  std::string template_name = "plain";  // plain | chat | a JSON template file
  int64_t seq_len = 2048;           // a sample may have at most seq_len + 1 tokens
  SftOverlong overlong = SftOverlong::truncate_prompt;
  double val_fraction = 0.02;       // share of usable records held out, in [0, 1)
  uint64_t seed = 1234;             // of the split
  uint64_t shard_tokens = 16'000'000;  // at most this many tokens per shard (whole samples)
  bool force = false;               // replace an earlier SFT prepare's output in out_dir
  size_t max_listed_rejects = 1000;    // SftPrepareSummary::rejects keeps the first ones
  std::function<void(const std::string&)> on_message;
};

struct SftPrepareSummary {
  std::vector<std::string> input_files;
  uint64_t records = 0;  // non-blank lines read
  uint64_t train_samples = 0, val_samples = 0;
  uint64_t train_tokens = 0, val_tokens = 0;                // BOS/EOS included
  uint64_t train_answer_tokens = 0, val_answer_tokens = 0;  // role answer
  uint64_t answers_over_50 = 0;  // usable samples whose answer has more than 50 tokens
  uint64_t truncated = 0;        // samples whose prompt was cut by truncate_prompt
  uint64_t rejected[kSftRejectKinds] = {};  // by SftRejectKind
  std::vector<SftReject> rejects;           // the first max_listed_rejects, in input order
  std::string tokenizer_path;
  uint64_t tokenizer_checksum = 0;
  int32_t vocab_size = 0;
  SpecialTokens special;
  std::vector<ShardEntry> train_shards, val_shards;
  std::string manifest_path;  // out_dir/sft-prepare.json
  std::string rejects_path;   // out_dir/sft-rejected.jsonl, "" when nothing was rejected
  double seconds = 0;

  uint64_t rejected_total() const;
};

// The SFT input files of `inputs`, in order: a file is itself (it must be named .jsonl,
// .jsonl.gz or .jsonl.zst); a directory gives its files with those names, recursively,
// sorted by path, hidden ones and the directories in `exclude_dirs` (the output directory,
// whose sft-rejected.jsonl must never be read back) skipped. meap::Error when nothing
// results.
std::vector<std::string> list_sft_files(const std::vector<std::string>& inputs,
                                        const std::vector<std::string>& exclude_dirs = {});

// Runs the pipeline. Bad records are counted, listed (out_dir/sft-rejected.jsonl) and
// skipped; the run fails (meap::Error) only when no record is usable, for bad options, an
// existing output without `force`, or I/O errors.
SftPrepareSummary prepare_sft(const SftPrepareOptions& options);

}  // namespace meap
