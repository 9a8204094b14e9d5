#include "meap/core/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "meap/core/error.hpp"

namespace meap {

void io_fail(const char* what, const std::string& path, int err) {
  fail("cannot ", what, " '", path, "': ", std::strerror(err));
}

uint64_t check_small_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    fail("cannot read ", what, " '", path, "': ", std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) fail(what, " '", path, "' is a directory, not a file");
  if (!S_ISREG(st.st_mode))
    fail(what, " '", path, "' is not a regular file (a device, pipe or socket); give a file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    fail(what, " '", path, "' is ", size, " bytes, more than the ", max_bytes,
         " bytes such a file can be: is it the right file?");
  return size;
}

std::string read_small_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  check_small_file(path, max_bytes, what);
  // O_NONBLOCK: a file swapped for a FIFO after the check must not block the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    fail("cannot read ", what, " '", path, "': ", std::strerror(err));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail("cannot read ", what, " '", path, "': ", std::strerror(err));
    }
    if (r == 0) break;
    if (out.size() + static_cast<size_t>(r) > max_bytes) {
      ::close(fd);
      fail(what, " '", path, "' grew past ", max_bytes, " bytes while it was read");
    }
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Linux writes at most ~2 GiB per call; asking for less keeps every call complete.
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail("write", path, errno);
    }
    if (w == 0) io_fail("write", path, EIO);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_fail("open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) io_fail("fsync directory", dir, err);
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_fail("open", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) io_fail("fsync", path, err);
}

void write_file_atomic(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_fail("create", tmp, errno);
  try {
    write_all(fd, data.data(), data.size(), tmp);
    if (::fsync(fd) != 0) io_fail("fsync", tmp, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    io_fail("close", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    io_fail("rename over", path, err);
  }
  const std::string parent = std::filesystem::path(path).parent_path().string();
  fsync_directory(parent.empty() ? "." : parent);
}

TempFile::TempFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) io_fail("create", path_, errno);
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(path_.c_str());
}

void TempFile::sync_and_close() {
  if (::fsync(fd_) != 0) io_fail("fsync", path_, errno);
  const int fd = fd_;
  fd_ = -1;  // close() releases the descriptor even when it reports an error
  if (::close(fd) != 0) io_fail("close", path_, errno);
}

void TempFile::commit_as(const std::string& target) {
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    const int err = errno;
    fail("cannot rename '", path_, "' to '", target, "': ", std::strerror(err));
  }
  committed_ = true;
  const std::string dir = std::filesystem::path(target).parent_path().string();
  fsync_directory(dir.empty() ? "." : dir);
}

}  // namespace meap
