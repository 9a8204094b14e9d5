// The `meap prepare` pipeline: a text corpus in, a tokenizer plus train/val token shards and
// a prepare.json manifest out (docs/data.md). Deterministic: the same inputs, options and
// seed give the same files bit for bit, whatever the number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "meap/data/token_shard.hpp"
#include "meap/data/tokenizer.hpp"

namespace meap {

// Reported after each chunk of documents is written (about every MiB of input).
struct PrepareProgress {
  uint64_t bytes_done = 0, bytes_total = 0;  // of the input files
  uint64_t documents = 0;                    // encoded, train and val
  uint64_t tokens = 0;                       // encoded, train and val, EOS included
  double seconds = 0;                        // since encoding started
};

struct PrepareOptions {
  std::string out_dir;              // created when missing
  std::vector<std::string> inputs;  // files and directories (see list_corpus_files)
  int32_t vocab_size = 4096;        // of the tokenizer trained here, reserved ids included
  // An existing tokenizer, copied instead of trained: a SentencePiece model (to
  // out_dir/tokenizer.model) or a Hugging Face tokenizer.json (to out_dir/tokenizer.json).
  std::string tokenizer;
  std::string jsonl_field = "text";  // the string field of a JSONL record that is its document
  double val_fraction = 0.01;       // in [0, 1): share of documents held out
  uint64_t shard_tokens = 100'000'000;  // at most this many tokens per shard file
  int threads = 0;                      // encoding threads; 0 = hardware concurrency
  uint64_t seed = 1234;                 // of the validation split
  bool force = false;                   // replace an earlier run's output in out_dir
  // Tokenizer training reads at most about this much text, sampled evenly over the corpus.
  uint64_t tokenizer_sample_bytes = uint64_t{1} << 30;
  // Documents go to the encoding threads in jobs of about this much text (a document is
  // never split). Affects speed and memory only, never the output.
  size_t chunk_bytes = size_t{1} << 20;
  std::function<void(const std::string&)> on_message;         // stage messages
  std::function<void(const PrepareProgress&)> on_progress;  // during encoding
};

struct ShardEntry {
  std::string path;  // out_dir/train-00000.bin, ...
  uint64_t n_tokens = 0;
};
// "2 (train-00000.bin .. train-00001.bin)", or "none": a split's shards in a summary.
std::string shard_names(const std::vector<ShardEntry>& shards);

struct PrepareSummary {
  std::vector<std::string> input_files;
  uint64_t input_bytes = 0;
  std::string tokenizer_path;  // out_dir/tokenizer.model or out_dir/tokenizer.json
  uint64_t tokenizer_checksum = 0;  // XXH3-64 of that file, also in every shard header
  bool tokenizer_trained = false;
  TokenizerKind tokenizer_kind = TokenizerKind::sentencepiece;
  bool mask_appended = false;  // [MASK] is an id after the tokenizer file's last one
  std::string mask_piece;      // the [MASK] id's piece: "[MASK]", "<|reserved_special_token_0|>"
  int32_t vocab_size = 0;
  SpecialTokens special;
  uint64_t train_documents = 0, val_documents = 0;
  uint64_t empty_documents = 0;  // dropped: whitespace only
  uint64_t train_tokens = 0, val_tokens = 0;  // EOS included
  // Entropy (nats per token) of the train split's unigram distribution: the loss of a
  // model that knows token frequencies and nothing else -- the baseline to beat.
  double train_unigram_entropy = 0;
  std::vector<ShardEntry> train_shards, val_shards;
  std::string manifest_path;  // out_dir/prepare.json
  int threads = 0;
  double seconds_total = 0, seconds_tokenizer = 0, seconds_encode = 0;
};

// Runs the whole pipeline. Throws meap::Error for bad options or input, for an existing
// out_dir/prepare.json (or shards of an interrupted run) without `force`, and for I/O
// failures; a run that fails after writing shards removes them again.
PrepareSummary prepare_corpus(const PrepareOptions& options);

// Whether document `ordinal` (0-based, in corpus order, empty documents not counted) hashes
// into the validation split: a Philox draw of (seed, ordinal) below val_fraction. This decides
// every document but the last; see docs/data.md for the last one.
bool hashes_to_val(uint64_t seed, uint64_t ordinal, double val_fraction);

}  // namespace meap
