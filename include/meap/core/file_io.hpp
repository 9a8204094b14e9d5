// Durable file writing shared by every writer of run state (safetensors, shards,
// manifests, checkpoints): complete writes, fsync of files and directories, and
// write-to-temporary-then-rename so a crash leaves the old file or the new one.
#pragma once

#include <string>
#include <string_view>

namespace meap {

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

}  // namespace meap
