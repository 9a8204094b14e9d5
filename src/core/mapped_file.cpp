#include "meap/core/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

MappedFile MappedFile::open(const std::string& path, const char* kind, const char* article,
                            uint64_t header_bytes) {
  // O_NONBLOCK: a FIFO given as this file fails the regular-file check below instead of
  // blocking the open until a writer appears (no effect on regular files).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) io_fail(str_cat("open ", kind).c_str(), path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) io_fail("stat", path, errno);
  if (!S_ISREG(st.st_mode)) fail(path, ": not ", article, " ", kind, ": not a regular file");
  const uint64_t bytes = static_cast<uint64_t>(st.st_size);
  if (bytes < header_bytes)
    fail(path, ": not ", article, " ", kind, ": ", bytes, " bytes is shorter than the ",
         header_bytes, "-byte header (truncated?)");
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) io_fail("mmap", path, errno);
  MappedFile f;
  f.data_ = static_cast<unsigned char*>(map);
  f.size_ = bytes;
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

uint64_t MappedFile::xxh3_from(uint64_t offset) const {
  ::madvise(data_, size_, MADV_SEQUENTIAL);
  const uint64_t h = xxh3_64(data_ + offset, size_ - offset);
  ::madvise(data_, size_, MADV_NORMAL);
  return h;
}

}  // namespace meap
