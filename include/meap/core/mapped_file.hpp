// A binary file mapped read-only (the shard formats), and the little-endian fields of such
// formats. The mapping outlives the descriptor and is released on destruction.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace meap {

// Fields are copied to and from disk with memcpy; the formats are little endian.
static_assert(std::endian::native == std::endian::little,
              "meap's binary formats assume a little-endian host");

template <class T>
T load_le(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
void store_le(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`, a regular file of at least `header_bytes`. Errors name the path and the
  // kind ("cannot open KIND 'PATH'", "PATH: not ARTICLE KIND: ...").
  static MappedFile open(const std::string& path, const char* kind, const char* article,
                         uint64_t header_bytes);
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    std::swap(data_, o.data_);  // o unmaps what this held
    std::swap(size_, o.size_);
    return *this;
  }
  ~MappedFile();

  const unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }
  // XXH3-64 of the bytes from `offset` to the end, in one sequential pass: the kernel reads
  // ahead, and the hint is dropped afterwards because later reads are not sequential.
  uint64_t xxh3_from(uint64_t offset) const;

 private:
  unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace meap
