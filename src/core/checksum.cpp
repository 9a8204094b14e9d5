#include "meap/core/checksum.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "meap/core/error.hpp"

namespace meap {

std::string checksum_string(uint64_t h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "xxh3-64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

uint64_t xxh3_64(const void* data, size_t n, uint64_t seed) {
  return seed == 0 ? XXH3_64bits(data, n) : XXH3_64bits_withSeed(data, n, seed);
}

struct Xxh3Stream::State {
  XXH3_state_t* s = XXH3_createState();
  ~State() { XXH3_freeState(s); }
};

Xxh3Stream::Xxh3Stream() : state_(std::make_unique<State>()) {
  MEAP_CHECK(state_->s != nullptr && XXH3_64bits_reset(state_->s) == XXH_OK);
}
Xxh3Stream::~Xxh3Stream() = default;
Xxh3Stream::Xxh3Stream(Xxh3Stream&&) noexcept = default;
Xxh3Stream& Xxh3Stream::operator=(Xxh3Stream&&) noexcept = default;

void Xxh3Stream::update(const void* data, size_t n) {
  MEAP_CHECK(XXH3_64bits_update(state_->s, data, n) == XXH_OK);
}

uint64_t Xxh3Stream::digest() const { return XXH3_64bits_digest(state_->s); }

std::string bytes_checksum(const void* data, size_t n) {
  return checksum_string(XXH3_64bits(data, n));
}

uint64_t file_xxh3(const std::string& path) {
  // O_NONBLOCK: a FIFO fails the regular-file check below instead of blocking the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("cannot read ", path, ": ", std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE*)> f(::fdopen(fd, "rb"), &std::fclose);
  if (!f) {
    const int err = errno;
    ::close(fd);
    fail("cannot read ", path, ": ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0) fail("cannot stat ", path, ": ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("cannot read ", path, ": not a regular file");
  Xxh3Stream stream;
  std::vector<char> buf(1 << 20);
  size_t got = 0;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) stream.update(buf.data(), got);
  if (std::ferror(f.get())) fail("cannot read ", path, ": ", std::strerror(errno));
  return stream.digest();
}

std::string file_checksum(const std::string& path) { return checksum_string(file_xxh3(path)); }

void verify_file_checksum(const std::string& path, const std::string& expected,
                          std::string_view what) {
  const std::string actual = file_checksum(path);
  if (actual != expected)
    fail(path, " (", what, ") is corrupt: its checksum is ", actual, " but ", expected,
         " was recorded when it was written; restore it from a copy, or use another checkpoint");
}

}  // namespace meap
