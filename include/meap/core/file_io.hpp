// Durable file writing shared by every writer of run state (safetensors, shards,
// manifests, checkpoints): complete writes, fsync of files and directories, and
// write-to-temporary-then-rename so a crash leaves the old file or the new one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace meap {

// Upper bounds for files that are small by nature, checked before they are read so that a
// wrong path (/dev/zero, a corpus given as a config) fails fast instead of filling memory.
constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;     // YAML configs, JSON templates
constexpr uint64_t kMaxManifestBytes = uint64_t{64} << 20;   // manifest.json, prepare.json,
                                                             // HF config/index JSON
constexpr uint64_t kMaxPointerBytes = 4096;                  // checkpoints/latest
constexpr uint64_t kMaxTokenizerBytes = uint64_t{1} << 30;   // tokenizer.model / .json

// Throws meap::Error naming `path` and `what` ("config file") unless it is a regular file
// of at most max_bytes; returns its size.
uint64_t check_small_file(const std::string& path, uint64_t max_bytes, std::string_view what);
// The whole file, after check_small_file (reads at most max_bytes even if it grows).
std::string read_small_file(const std::string& path, uint64_t max_bytes, std::string_view what);

// Throws meap::Error "cannot WHAT 'PATH': strerror(err)".
[[noreturn]] void io_fail(const char* what, const std::string& path, int err);
// Writes all n bytes (retrying short writes and EINTR); errors name `path`.
void write_all(int fd, const void* data, size_t n, const std::string& path);
// Makes a directory's entries (a rename, a new file) durable. Filesystems that cannot
// sync directories (EINVAL) are accepted as they are.
void fsync_directory(const std::string& dir);
void fsync_file(const std::string& path);
// Writes `data` to path + ".tmp", fsyncs, renames over `path`, fsyncs the directory; on
// failure the temporary file is removed and the old `path` is untouched.
void write_file_atomic(const std::string& path, std::string_view data);

// The temporary file of a write made piece by piece: on any exit before commit_as() it is
// closed and removed, so a failed write leaves neither a half-written target nor a stray
// .tmp behind.
class TempFile {
 public:
  explicit TempFile(std::string path);  // created (or truncated); throws naming it
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  void sync_and_close();
  // Renames the (synced and closed) file over `target` and fsyncs target's directory.
  void commit_as(const std::string& target);

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace meap
