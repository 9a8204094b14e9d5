#include "meap/core/checksum.hpp"

#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "meap/core/error.hpp"

namespace meap {

namespace {

std::string format(XXH64_hash_t h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "xxh3-64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string bytes_checksum(const void* data, size_t n) { return format(XXH3_64bits(data, n)); }

std::string file_checksum(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail("cannot read ", path, ": ", std::strerror(errno));
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                         &XXH3_freeState);
  MEAP_CHECK(state && XXH3_64bits_reset(state.get()) == XXH_OK);
  std::vector<char> buf(1 << 20);
  size_t got = 0;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0)
    MEAP_CHECK(XXH3_64bits_update(state.get(), buf.data(), got) == XXH_OK);
  if (std::ferror(f.get())) fail("cannot read ", path, ": ", std::strerror(errno));
  return format(XXH3_64bits_digest(state.get()));
}

void verify_file_checksum(const std::string& path, const std::string& expected,
                          std::string_view what) {
  const std::string actual = file_checksum(path);
  if (actual != expected)
    fail(path, " (", what, ") is corrupt: its checksum is ", actual, " but ", expected,
         " was recorded when it was written; restore it from a copy, or use another checkpoint");
}

}  // namespace meap
