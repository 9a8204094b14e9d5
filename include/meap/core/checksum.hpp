// Checksums of the files meap writes and reads back (checkpoint files, tokenizers):
// XXH3-64 from libxxhash, written as "xxh3-64:<16 hex digits>" so the algorithm is named
// wherever a checksum is stored (docs/formats.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace meap {

// XXH3-64 of n bytes; `seed` 0 is the plain XXH3_64bits (what `xxhsum -H3` prints).
uint64_t xxh3_64(const void* data, size_t n, uint64_t seed = 0);

// XXH3-64 over bytes given in pieces (the same value as xxh3_64 over their concatenation,
// seed 0): for data written or read in chunks.
class Xxh3Stream {
 public:
  Xxh3Stream();
  ~Xxh3Stream();
  Xxh3Stream(Xxh3Stream&&) noexcept;
  Xxh3Stream& operator=(Xxh3Stream&&) noexcept;
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "xxh3-64:<16 hex digits>" of a raw XXH3-64 value, as manifests and prepare.json store it.
std::string checksum_string(uint64_t xxh3);

// The checksum of n bytes.
std::string bytes_checksum(const void* data, size_t n);

// The raw XXH3-64 of a whole regular file, read in chunks (bounded memory); throws naming
// the path when it cannot be read or is not a regular file (/dev/zero would never end).
uint64_t file_xxh3(const std::string& path);

// The checksum of a whole file, read in chunks (bounded memory); throws naming the path
// when it cannot be read.
std::string file_checksum(const std::string& path);

// Throws meap::Error naming the file, the recorded and the actual checksum, unless the file
// has the `expected` checksum. `what` says what the file is for ("checkpoint weights").
void verify_file_checksum(const std::string& path, const std::string& expected,
                          std::string_view what);

}  // namespace meap
