// What `meap prepare` and `meap prepare --sft` share on the output side: one split's series
// of shard files PREFIX-00000.bin, PREFIX-00001.bin, ..., the listing of an earlier run's
// files, and the manifest's list of shards.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "meap/data/prepare.hpp"  // ShardEntry
#include "meap/data/sft_shard.hpp"
#include "meap/data/token_shard.hpp"

namespace meap {

// Writer: ShardWriter (a continuous token stream cut every shard_tokens tokens) or
// SftShardWriter (whole samples; a new file when the next would pass shard_tokens, a sample
// longer than that getting a file of its own). A file is opened only when a token needs it,
// so a split with no data writes no file.
template <class Writer>
class ShardSeries {
 public:
  ShardSeries(std::filesystem::path dir, std::string prefix, uint64_t shard_tokens,
              uint32_t vocab_size, SpecialTokens special, uint64_t tokenizer_checksum)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens),
        vocab_size_(vocab_size), special_(special), tokenizer_checksum_(tokenizer_checksum) {}

  // ShardWriter: n tokens of the stream.
  void append(const int32_t* tokens, size_t n) {
    while (n > 0) {
      const size_t k =
          static_cast<size_t>(std::min<uint64_t>(n, shard_tokens_ - current().n_tokens()));
      current_->append(tokens, k);
      tokens += k;
      n -= k;
      total_ += k;
      if (current_->n_tokens() == shard_tokens_) commit();
    }
  }

  // SftShardWriter: one sample of n tokens and roles.
  void append(const int32_t* tokens, const uint8_t* roles, size_t n) {
    if (current_ && current_->n_tokens() + n > shard_tokens_) commit();
    current().append(tokens, roles, n);
    total_ += n;
  }

  void finish() {
    if (current_) commit();
  }

  // Best effort, for a failed run: the shards it committed describe data it never finished.
  // (An uncommitted writer removes its own temporary file.)
  void remove_committed() noexcept {
    for (const ShardEntry& s : done_) {
      std::error_code ec;
      std::filesystem::remove(s.path, ec);
    }
  }

  uint64_t total() const { return total_; }
  const std::vector<ShardEntry>& shards() const { return done_; }

 private:
  Writer& current() {
    if (!current_) {
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05zu.bin", prefix_.c_str(), done_.size());
      current_.emplace((dir_ / name).string(), vocab_size_, special_, tokenizer_checksum_);
    }
    return *current_;
  }

  void commit() {
    current_->finish();
    done_.push_back({current_->path(), current_->n_tokens()});
    current_.reset();
  }

  std::filesystem::path dir_;
  std::string prefix_;
  uint64_t shard_tokens_;
  uint32_t vocab_size_;
  SpecialTokens special_;
  uint64_t tokenizer_checksum_;
  std::optional<Writer> current_;
  std::vector<ShardEntry> done_;
  uint64_t total_ = 0;
};

// The files of `dir` whose names match `pattern` (an earlier run's outputs), sorted.
inline std::vector<std::filesystem::path> files_matching(const std::filesystem::path& dir,
                                                         const std::regex& pattern) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (std::regex_match(it->path().filename().string(), pattern)) found.push_back(it->path());
  std::sort(found.begin(), found.end());
  return found;
}

// [{"file": "train-00000.bin", "tokens": N}, ...] for the manifest.
inline nlohmann::ordered_json shard_list(const std::vector<ShardEntry>& shards) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ShardEntry& s : shards)
    list.push_back({{"file", std::filesystem::path(s.path).filename().string()},
                    {"tokens", s.n_tokens}});
  return list;
}

}  // namespace meap
