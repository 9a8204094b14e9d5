// LineReader: the lines of a text file that may be compressed -- `.gz` (zlib) or `.zst`
// (libzstd), chosen by the file name -- streamed in chunks, so files larger than memory
// are fine. `meap prepare --sft` reads its JSONL inputs through it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace meap {

enum class Compression { none, gzip, zstd };

// By the name's last extension, case-insensitive: .gz -> gzip, .zst -> zstd, else none.
Compression compression_of(const std::string& path);

class LineReader {
 public:
  // Opens the file (meap::Error naming it when it cannot be opened).
  explicit LineReader(std::string path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (and without one trailing '\r'); valid until the next
  // call. False at the end of the file. A corrupt or truncated compressed stream is a
  // meap::Error naming the file and the line it got to.
  bool next(std::string_view& line);

  // 1-based number of the line last returned.
  uint64_t line_number() const { return line_number_; }
  // Bytes of the file (compressed) consumed so far: for progress.
  uint64_t file_bytes_read() const;
  // Decompressed bytes of the lines returned so far, their '\n's included: for a plain file
  // the offset just after the last line returned.
  uint64_t text_bytes_returned() const { return decompressed_ - (buffer_.size() - begin_); }
  const std::string& path() const { return path_; }

  class Source;  // one per compression (defined in line_reader.cpp)

 private:
  bool refill();

  std::string path_;
  std::unique_ptr<Source> source_;
  std::string buffer_;   // decompressed bytes not yet returned, from begin_
  size_t begin_ = 0;
  bool eof_ = false;
  uint64_t line_number_ = 0;
  uint64_t decompressed_ = 0;  // bytes the source has given
};

}  // namespace meap
