#include "meap/core/record_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

RecordFile::RecordFile(std::string path, bool whole_lines) : path_(std::move(path)) {
  // Not O_APPEND: every write goes at size_, the end of the last whole record, which a
  // failed write is cut back to.
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) io_fail("open for writing", path_, errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    io_fail("stat", path_, err);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (whole_lines && size_ > 0) {
    // The offset just past the last '\n' (0 when there is none), read backwards in blocks.
    const int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd < 0) {
      const int err = errno;
      ::close(fd_);
      io_fail("read", path_, err);
    }
    uint64_t end = size_, keep = 0;
    char buf[4096];
    bool found = false;
    while (end > 0 && !found) {
      const uint64_t n = end < sizeof buf ? end : sizeof buf;
      const ssize_t r = ::pread(rfd, buf, n, static_cast<off_t>(end - n));
      if (r != static_cast<ssize_t>(n)) break;  // unreadable: keep the file as it is
      for (uint64_t i = n; i-- > 0;)
        if (buf[i] == '\n') {
          keep = end - n + i + 1;
          found = true;
          break;
        }
      end -= n;
    }
    ::close(rfd);
    if ((found || end == 0) && keep < size_) {
      if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) {
        const int err = errno;
        ::close(fd_);
        io_fail("truncate the incomplete last line of", path_, err);
      }
      repaired_ = size_ - keep;
      size_ = keep;
    }
  }
}

RecordFile::~RecordFile() {
  if (fd_ >= 0) ::close(fd_);
}

void RecordFile::append(std::string_view record) {
  const char* p = record.data();
  size_t left = record.size();
  uint64_t at = size_;
  while (left > 0) {
    const ssize_t w = ::pwrite(fd_, p, left, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      // Best effort: on a read-only remount the cut fails too, and the error says so.
      (void)!::ftruncate(fd_, static_cast<off_t>(size_));
      io_fail("write", path_, err);
    }
    p += w;
    left -= static_cast<size_t>(w);
    at += static_cast<uint64_t>(w);
  }
  size_ = at;
}

}  // namespace meap
