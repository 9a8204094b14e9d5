// Checksums of the files meap writes and reads back (checkpoint files, tokenizers):
// XXH3-64 from libxxhash, written as "xxh3-64:<16 hex digits>" so the algorithm is named
// wherever a checksum is stored (docs/formats.md).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meap {

// The checksum of n bytes.
std::string bytes_checksum(const void* data, size_t n);

// The checksum of a whole file, read in chunks (bounded memory); throws naming the path
// when it cannot be read.
std::string file_checksum(const std::string& path);

// Throws meap::Error naming the file, the recorded and the actual checksum, unless the file
// has the `expected` checksum. `what` says what the file is for ("checkpoint weights").
void verify_file_checksum(const std::string& path, const std::string& expected,
                          std::string_view what);

}  // namespace meap
