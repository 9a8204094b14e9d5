// SFT shards: what `meap prepare --sft` writes and the SFT streamer reads. Each sample is
// its NTP-SFT token sequence `[BOS] ... [EOS]` plus one role per token (template, prompt,
// answer, answer end); a header with magic, version, vocab, special ids, tokenizer checksum,
// counts and checksum; a sample index. Written atomically, validated on open
// (layout in docs/formats.md, "SFT shards").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "meap/data/token_shard.hpp"

namespace meap {

// What a token of an SFT sample is. Only answer and answer_end tokens carry loss in NTP-SFT;
// the MEAP copy masks answer tokens (docs/sft.md).
enum class SftRole : uint8_t {
  template_text = 0,  // BOS and the chat template's own text ("<|user|>\n", ...)
  prompt = 1,         // system and user message text
  answer = 2,         // assistant message text
  answer_end = 3,     // the EOS that closes each assistant turn
};
constexpr uint8_t kSftRoleCount = 4;
const char* sft_role_name(SftRole role);  // "template", "prompt", "answer", "answer_end"

// True for the roles NTP-SFT trains on (answer, answer_end).
inline bool sft_role_trained(uint8_t role) {
  return role == static_cast<uint8_t>(SftRole::answer) ||
         role == static_cast<uint8_t>(SftRole::answer_end);
}

struct SftShardInfo {
  uint32_t version = 0;
  uint32_t token_bytes = 0;  // 2 when vocab_size <= 65536, else 4
  uint64_t n_tokens = 0, n_samples = 0;
  uint32_t vocab_size = 0;
  SpecialTokens special;             // bos and eos are always >= 0
  uint64_t tokenizer_checksum = 0;   // XXH3-64 of the tokenizer file (file_xxh3)
  uint64_t checksum = 0;             // sft_shard_checksum() of the header and the sections
};

constexpr uint32_t kSftShardVersion = 2;  // 1 (hand-written checksums) is refused

// The checksum stored in the header: XXH3-64 of the 96-byte `header` with its checksum field
// taken as zero, seeded with `body_xxh3`, the XXH3-64 of every byte after the header.
uint64_t sft_shard_checksum(const void* header, uint64_t body_xxh3);
constexpr size_t kSftShardHeaderBytes = 96;

// Collects samples in memory (3 bytes per token with 2-byte ids, plus 8 per sample) and
// writes the shard at finish(): to PATH.tmp, fsynced, renamed over PATH, directory fsynced.
// A writer that is never finished leaves nothing on disk.
class SftShardWriter {
 public:
  // Throws meap::Error (naming the path) for vocab_size 0, a special id outside the vocab
  // (other than -1), or no BOS / EOS id.
  SftShardWriter(std::string path, uint32_t vocab_size, SpecialTokens special,
                 uint64_t tokenizer_checksum);

  // One sample of n tokens and n roles. Refuses (meap::Error naming the path and the sample)
  // n < 2, a first token that is not BOS, an id outside the vocab, a role >= kSftRoleCount,
  // and a sample without an answer token; a refused sample is not added.
  void append(const int32_t* tokens, const uint8_t* roles, size_t n);
  void finish();

  const std::string& path() const { return path_; }
  uint64_t n_tokens() const { return roles_.size(); }
  uint64_t n_samples() const { return offsets_.size() - 1; }

 private:
  std::string path_;
  uint32_t vocab_size_;
  uint32_t token_bytes_;
  SpecialTokens special_;
  uint64_t tokenizer_checksum_;
  std::vector<unsigned char> tokens_;  // encoded ids, little endian
  std::vector<uint8_t> roles_;
  std::vector<uint64_t> offsets_{0};  // (n_samples + 1) first token of each sample
  bool done_ = false;
};

// An SFT shard mapped read-only. open() checks the header, the exact file size, the
// checksum (when asked), the sample index (starts at 0, ends at n_tokens, every sample at
// least 2 tokens) and every role (valid, at least one answer token per sample), and counts
// each sample's answer tokens. Every meap::Error names the path.
class SftShardReader {
 public:
  static SftShardReader open(const std::string& path, bool verify_checksum = true);

  const SftShardInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  uint64_t n_samples() const { return info_.n_samples; }
  // Tokens of sample i (BOS and EOS included).
  int64_t sample_tokens(uint64_t i) const;
  // Tokens of sample i whose role is answer (answer_end excluded).
  int64_t answer_tokens(uint64_t i) const { return answer_counts_[i]; }
  // Sample i's tokens, widened to int32 (resized to sample_tokens(i)); refuses an id outside
  // the vocab (possible only when the checksum was not verified).
  void read_tokens(uint64_t i, std::vector<int32_t>& out) const;
  // Sample i's roles: sample_tokens(i) bytes inside the mapping.
  const uint8_t* roles(uint64_t i) const;

 private:
  SftShardReader() = default;
  uint64_t offset(uint64_t i) const;

  std::string path_;
  SftShardInfo info_;
  MappedFile file_;
  size_t roles_at_ = 0, index_at_ = 0;  // byte offsets in the file
  std::vector<uint32_t> answer_counts_;  // (n_samples)
};

// Refuses (meap::Error naming both files) SFT shards that disagree on the vocab size, a
// special id or the tokenizer checksum.
void check_sft_shards_compatible(const std::vector<SftShardInfo>& infos,
                                 const std::vector<std::string>& paths);

}  // namespace meap
