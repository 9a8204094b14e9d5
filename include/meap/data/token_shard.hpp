// Token shards: the binary files `meap prepare` writes and the streamer reads. A 64-byte
// header (vocab size, special ids, token count, checksum) then little-endian token ids;
// written atomically, memory-mapped and validated on open (layout in docs/formats.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meap/core/checksum.hpp"
#include "meap/core/file_io.hpp"
#include "meap/core/mapped_file.hpp"

namespace meap {

// Ids of the special tokens a shard was tokenized with; -1 means the tokenizer has none.
// Shards that are mixed in one run must agree on them (check_shards_compatible).
struct SpecialTokens {
  int32_t bos = -1, eos = -1, pad = -1, mask = -1;
  bool operator==(const SpecialTokens&) const = default;
};
// "bos=1 eos=2 pad=-1 mask=3", for messages.
std::string special_tokens_string(const SpecialTokens& s);
// The first special id outside [0, vocab_size) other than -1, as "name=id"; "" when none.
std::string bad_special_token(const SpecialTokens& s, uint32_t vocab_size);

// The header of a shard, as read (or about to be written).
struct ShardInfo {
  uint32_t version = 0;
  uint32_t token_bytes = 0;  // 2 (uint16 ids) when vocab_size <= 65536, else 4 (uint32)
  uint64_t n_tokens = 0;
  uint32_t vocab_size = 0;
  SpecialTokens special;
  uint64_t checksum = 0;            // shard_checksum() of the header and the token bytes
  uint64_t tokenizer_checksum = 0;  // XXH3-64 of the tokenizer file the ids come from; 0: none
};

// The current format version; readers refuse older (version 1: re-run meap prepare) and
// newer versions.
constexpr uint32_t kShardVersion = 2;
constexpr size_t kShardHeaderBytes = 64;

// The checksum stored in the header: XXH3-64 of the 64-byte `header` with its checksum
// field taken as zero, seeded with `tokens_xxh3`, the XXH3-64 of the token bytes
// (docs/formats.md, so other tools can produce and check it).
uint64_t shard_checksum(const void* header, uint64_t tokens_xxh3);

// Streams tokens into a new shard. Nothing appears at `path` until finish(): the data goes to
// `path + ".tmp"`, which finish() fsyncs and renames over `path` (then fsyncs the directory).
// A writer destroyed without finish() (an exception, a cancelled run) removes the temporary
// file, so a shard on disk is always complete.
class ShardWriter {
 public:
  // Throws meap::Error (naming the path) for vocab_size 0, a special id outside
  // [0, vocab_size) other than -1, or when the temporary file cannot be created.
  // `tokenizer_checksum`: XXH3-64 of the tokenizer file (file_xxh3); 0 records none, and
  // `meap train` refuses such shards.
  ShardWriter(std::string path, uint32_t vocab_size, SpecialTokens special,
              uint64_t tokenizer_checksum = 0);

  // Buffers the tokens and writes them out in chunks of a few MiB. Refuses (meap::Error
  // naming the id, its position and the path) an id outside [0, vocab_size); the tokens of
  // that call are then not appended at all.
  void append(const int32_t* tokens, size_t n);
  // Writes the header and commits the shard. The writer cannot be used afterwards.
  void finish();

  const std::string& path() const { return path_; }
  uint64_t n_tokens() const { return n_tokens_; }

 private:
  void flush();

  std::string path_;
  std::unique_ptr<TempFile> file_;  // null once finished or failed (or moved from)
  uint32_t vocab_size_ = 0;
  uint32_t token_bytes_ = 0;
  SpecialTokens special_;
  uint64_t tokenizer_checksum_ = 0;
  uint64_t n_tokens_ = 0;
  Xxh3Stream hash_;                    // over the token bytes flushed so far
  std::vector<unsigned char> buffer_;  // encoded tokens not yet written
};

// A shard mapped read-only into memory. open() validates everything it can before any token
// is used, so a truncated or corrupt shard is refused with its path instead of feeding garbage
// into training.
class ShardReader {
 public:
  // Checks, in order: the file is at least a header long; the magic; the version (newer ones
  // are refused as "written by a newer meap"); token width 2 or 4; the file size equals
  // header + n_tokens * width ("truncated" / "trailing bytes", with both sizes); special ids
  // inside the vocab or -1; and, when verify_checksum, the checksum ("checksum mismatch").
  // Every meap::Error names the path.
  static ShardReader open(const std::string& path, bool verify_checksum = true);

  const ShardInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  // Number of tokens.
  uint64_t size() const { return info_.n_tokens; }
  // Copies tokens [offset, offset + n) into out, widened to int32. Throws meap::Error for a
  // range past the end, or for an id outside the vocab (possible only when the checksum was
  // not verified and the file is corrupt).
  void read(uint64_t offset, size_t n, int32_t* out) const;

 private:
  ShardReader() = default;

  std::string path_;
  ShardInfo info_;
  MappedFile file_;  // the whole file
};

// Refuses (meap::Error naming both files) shards that disagree on the vocab size, on any
// special id or on the tokenizer checksum: mixing them would silently train on mismatched token ids. infos[i] belongs to
// paths[i].
void check_shards_compatible(const std::vector<ShardInfo>& infos,
                             const std::vector<std::string>& paths);

}  // namespace meap
