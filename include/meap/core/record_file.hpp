// RecordFile: an append-only file of whole records (metrics.jsonl lines, TensorBoard event
// records) where a write either lands completely or not at all. A failed write (a full
// disk, a read-only remount) is cut back to the last whole record and reported with the
// path and the errno text, so the file never ends in half a record and nothing is lost
// without an error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace meap {

class RecordFile {
 public:
  // Opens `path` for appending (created if missing). With whole_lines, a last line without
  // its '\n' (a process killed inside a write by an older meap, or by kill -9 between the
  // bytes) is cut off first, so that the records appended next start on a line of their own.
  RecordFile(std::string path, bool whole_lines);
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  // Appends all of `record` or, on failure, truncates back to where it started and throws
  // meap::Error "cannot write 'PATH': <errno text>".
  void append(std::string_view record);
  const std::string& path() const { return path_; }
  // Bytes cut off at open because the last line was incomplete (0 when none).
  uint64_t repaired_bytes() const { return repaired_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;  // the end of the last whole record
  uint64_t repaired_ = 0;
};

}  // namespace meap
