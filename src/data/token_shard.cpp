#include "meap/data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

// Header fields and token ids are copied to and from disk with memcpy; the format is little
// endian.
static_assert(std::endian::native == std::endian::little,
              "meap's token shard code assumes a little-endian host");

namespace {

// Header layout (64 bytes, little endian):
//   0  magic "MEAPTOK\0"   8  u32 version    12 u32 token_bytes  16 u64 n_tokens
//   24 u32 vocab_size      28 i32 bos        32 i32 eos          36 i32 pad
//   40 i32 mask            44 u32 reserved   48 u64 checksum     56 u64 tokenizer_checksum
constexpr char kMagic[8] = {'M', 'E', 'A', 'P', 'T', 'O', 'K', '\0'};
constexpr size_t kOffVersion = 8, kOffTokenBytes = 12, kOffNTokens = 16, kOffVocab = 24,
                 kOffBos = 28, kOffEos = 32, kOffPad = 36, kOffMask = 40, kOffReserved = 44,
                 kOffChecksum = 48, kOffTokenizer = 56;
static_assert(kOffTokenizer + 8 == kShardHeaderBytes);

// Tokens are written in chunks of this many bytes.
constexpr size_t kChunkBytes = size_t{4} << 20;

template <class T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
void store(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}



void pwrite_all(int fd, const unsigned char* data, size_t n, off_t offset,
                const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail("write", path, errno);
    }
    if (w == 0) io_fail("write", path, EIO);
    data += w;
    n -= static_cast<size_t>(w);
    offset += w;
  }
}


bool special_id_ok(int32_t id, uint32_t vocab_size) {
  return id == -1 || (id >= 0 && static_cast<uint64_t>(id) < vocab_size);
}

// The first special id outside the vocab, as "name=id", or "" when all are fine.
std::string bad_special(const SpecialTokens& s, uint32_t vocab_size) {
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", s.bos}, {"eos", s.eos}, {"pad", s.pad}, {"mask", s.mask}};
  for (const auto& [name, id] : ids)
    if (!special_id_ok(id, vocab_size)) return str_cat(name, "=", id);
  return {};
}

std::string special_string(const SpecialTokens& s) {
  return str_cat("bos=", s.bos, " eos=", s.eos, " pad=", s.pad, " mask=", s.mask);
}

bool same_special(const SpecialTokens& a, const SpecialTokens& b) {
  return a.bos == b.bos && a.eos == b.eos && a.pad == b.pad && a.mask == b.mask;
}

}  // namespace

uint64_t shard_checksum(const void* header, uint64_t tokens_xxh3) {
  unsigned char h[kShardHeaderBytes];
  std::memcpy(h, header, sizeof h);
  store<uint64_t>(h + kOffChecksum, 0);
  return xxh3_64(h, sizeof h, tokens_xxh3);
}

// ---- ShardWriter ------------------------------------------------------------------------

ShardWriter::ShardWriter(std::string path, uint32_t vocab_size, SpecialTokens special,
                         uint64_t tokenizer_checksum)
    : path_(std::move(path)),
      vocab_size_(vocab_size),
      special_(special),
      tokenizer_checksum_(tokenizer_checksum) {
  if (vocab_size_ == 0) fail(path_, ": cannot write a token shard with vocab_size 0");
  if (const std::string bad = bad_special(special_, vocab_size_); !bad.empty())
    fail(path_, ": special token id ", bad, " is outside the vocab [0, ", vocab_size_,
         ") (use -1 for a token the tokenizer does not have)");
  token_bytes_ = vocab_size_ <= 65536 ? 2 : 4;
  tmp_path_ = path_ + ".tmp";
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) io_fail("create", tmp_path_, errno);
  // The header is written last (it holds the count and checksum); reserve its bytes now.
  const unsigned char zeros[kShardHeaderBytes] = {};
  try {
    write_all(fd_, zeros, sizeof zeros, tmp_path_);
  } catch (...) {
    abandon();
    throw;
  }
  buffer_.reserve(kChunkBytes);
}

ShardWriter::ShardWriter(ShardWriter&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_path_(std::move(other.tmp_path_)),
      fd_(std::exchange(other.fd_, -1)),
      vocab_size_(other.vocab_size_),
      token_bytes_(other.token_bytes_),
      special_(other.special_),
      tokenizer_checksum_(other.tokenizer_checksum_),
      n_tokens_(other.n_tokens_),
      hash_(std::move(other.hash_)),
      buffer_(std::move(other.buffer_)),
      done_(std::exchange(other.done_, true)) {}

ShardWriter& ShardWriter::operator=(ShardWriter&& other) noexcept {
  if (this != &other) {
    abandon();
    path_ = std::move(other.path_);
    tmp_path_ = std::move(other.tmp_path_);
    fd_ = std::exchange(other.fd_, -1);
    vocab_size_ = other.vocab_size_;
    token_bytes_ = other.token_bytes_;
    special_ = other.special_;
    tokenizer_checksum_ = other.tokenizer_checksum_;
    n_tokens_ = other.n_tokens_;
    hash_ = std::move(other.hash_);
    buffer_ = std::move(other.buffer_);
    done_ = std::exchange(other.done_, true);
  }
  return *this;
}

ShardWriter::~ShardWriter() { abandon(); }

void ShardWriter::abandon() noexcept {
  if (done_) return;
  done_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_path_.c_str());
}

void ShardWriter::append(const int32_t* tokens, size_t n) {
  if (done_) fail(path_, ": append() after finish() or a failed write");
  // Validate the whole call first, so a refused call appends nothing.
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || static_cast<uint64_t>(tokens[i]) >= vocab_size_)
      fail(path_, ": token id ", tokens[i], " (token ", n_tokens_ + i,
           " of the shard) is outside the vocab [0, ", vocab_size_, ")");
  }
  try {
    size_t i = 0;
    while (i < n) {
      const size_t room = (kChunkBytes - buffer_.size()) / token_bytes_;
      const size_t take = std::min(room, n - i);
      const size_t at = buffer_.size();
      buffer_.resize(at + take * token_bytes_);
      unsigned char* dst = buffer_.data() + at;
      if (token_bytes_ == 2) {
        for (size_t k = 0; k < take; ++k)
          store(dst + 2 * k, static_cast<uint16_t>(tokens[i + k]));
      } else {
        std::memcpy(dst, tokens + i, take * 4);  // ids are >= 0: int32 bits == uint32 bits
      }
      i += take;
      n_tokens_ += take;
      if (buffer_.size() == kChunkBytes) flush();
    }
  } catch (...) {
    abandon();
    throw;
  }
}

// Writes the buffered bytes, hashing them on the way.
void ShardWriter::flush() {
  hash_.update(buffer_.data(), buffer_.size());
  write_all(fd_, buffer_.data(), buffer_.size(), tmp_path_);
  buffer_.clear();
}

void ShardWriter::finish() {
  if (done_) fail(path_, ": finish() called twice or after a failed write");
  try {
    flush();
    buffer_.shrink_to_fit();

    unsigned char h[kShardHeaderBytes] = {};
    std::memcpy(h, kMagic, sizeof kMagic);
    store<uint32_t>(h + kOffVersion, kShardVersion);
    store<uint32_t>(h + kOffTokenBytes, token_bytes_);
    store<uint64_t>(h + kOffNTokens, n_tokens_);
    store<uint32_t>(h + kOffVocab, vocab_size_);
    store<int32_t>(h + kOffBos, special_.bos);
    store<int32_t>(h + kOffEos, special_.eos);
    store<int32_t>(h + kOffPad, special_.pad);
    store<int32_t>(h + kOffMask, special_.mask);
    store<uint32_t>(h + kOffReserved, 0);
    store<uint64_t>(h + kOffTokenizer, tokenizer_checksum_);
    store<uint64_t>(h + kOffChecksum, shard_checksum(h, hash_.digest()));
    pwrite_all(fd_, h, sizeof h, 0, tmp_path_);

    if (::fsync(fd_) != 0) io_fail("fsync", tmp_path_, errno);
    const int fd = std::exchange(fd_, -1);  // close() releases it even when it reports an error
    if (::close(fd) != 0) io_fail("close", tmp_path_, errno);
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      fail("cannot rename '", tmp_path_, "' to '", path_, "': ", std::strerror(err));
    }
  } catch (...) {
    abandon();
    throw;
  }
  done_ = true;  // committed: the temporary file is now the shard
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  fsync_directory(dir.empty() ? "." : dir);
}

// ---- ShardReader ------------------------------------------------------------------------

ShardReader ShardReader::open(const std::string& path, bool verify_checksum) {
  ShardReader r;
  r.path_ = path;

  // O_NONBLOCK: a FIFO given as this file fails the regular-file check below instead of
  // blocking the open until a writer appears (no effect on regular files).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) io_fail("open token shard", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) io_fail("stat", path, errno);
  if (!S_ISREG(st.st_mode)) fail(path, ": not a token shard: not a regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kShardHeaderBytes)
    fail(path, ": not a token shard: ", file_bytes, " bytes is shorter than the ",
         kShardHeaderBytes, "-byte header (truncated?)");

  // The mapping stays valid after the descriptor is closed.
  void* map = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) io_fail("mmap", path, errno);
  r.map_ = map;
  r.map_bytes_ = file_bytes;
  const auto* h = static_cast<const unsigned char*>(map);

  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    fail(path, ": not a meap token shard (bad magic; expected \"MEAPTOK\\0\")");
  ShardInfo& info = r.info_;
  info.version = load<uint32_t>(h + kOffVersion);
  if (info.version > kShardVersion)
    fail(path, ": token shard format version ", info.version,
         " was written by a newer meap; this build reads up to version ", kShardVersion,
         " (update meap or re-run meap prepare)");
  if (info.version == 0) fail(path, ": invalid token shard format version 0 (corrupt header)");
  if (info.version < kShardVersion)
    fail(path, ": token shard format version ", info.version, " is no longer read: it has no "
         "tokenizer checksum and an older shard checksum; re-run meap prepare to rewrite it "
         "(version ", kShardVersion, ")");
  info.token_bytes = load<uint32_t>(h + kOffTokenBytes);
  if (info.token_bytes != 2 && info.token_bytes != 4)
    fail(path, ": invalid token width ", info.token_bytes, " bytes (must be 2 or 4)");
  info.n_tokens = load<uint64_t>(h + kOffNTokens);
  info.vocab_size = load<uint32_t>(h + kOffVocab);
  info.special.bos = load<int32_t>(h + kOffBos);
  info.special.eos = load<int32_t>(h + kOffEos);
  info.special.pad = load<int32_t>(h + kOffPad);
  info.special.mask = load<int32_t>(h + kOffMask);
  info.checksum = load<uint64_t>(h + kOffChecksum);
  info.tokenizer_checksum = load<uint64_t>(h + kOffTokenizer);

  // A file cut short or with junk appended: compare sizes before trusting n_tokens.
  uint64_t expected = 0;
  if (__builtin_mul_overflow(info.n_tokens, uint64_t{info.token_bytes}, &expected) ||
      __builtin_add_overflow(expected, uint64_t{kShardHeaderBytes}, &expected))
    fail(path, ": corrupt header: token count ", info.n_tokens, " is impossibly large");
  if (file_bytes < expected)
    fail(path, ": token shard is truncated: the header promises ", info.n_tokens,
         " tokens (", expected, " bytes) but the file has ", file_bytes, " bytes");
  if (file_bytes > expected)
    fail(path, ": token shard has trailing bytes: the header promises ", info.n_tokens,
         " tokens (", expected, " bytes) but the file has ", file_bytes, " bytes");

  if (info.vocab_size == 0) fail(path, ": corrupt header: vocab_size is 0");
  if (info.token_bytes == 2 && info.vocab_size > 65536)
    fail(path, ": corrupt header: vocab_size ", info.vocab_size,
         " does not fit 2-byte token ids");
  if (const std::string bad = bad_special(info.special, info.vocab_size); !bad.empty())
    fail(path, ": corrupt header: special token id ", bad, " is outside the vocab [0, ",
         info.vocab_size, ")");
  if (load<uint32_t>(h + kOffReserved) != 0)
    fail(path, ": corrupt header: reserved bytes are not zero");

  if (verify_checksum) {
    // One sequential pass: tell the kernel to read ahead, and drop the hint afterwards
    // because the streamer's later reads are not sequential.
    ::madvise(map, file_bytes, MADV_SEQUENTIAL);
    const uint64_t actual =
        shard_checksum(h, xxh3_64(h + kShardHeaderBytes, file_bytes - kShardHeaderBytes));
    ::madvise(map, file_bytes, MADV_NORMAL);
    if (actual != info.checksum)
      fail(path, ": checksum mismatch: the shard is corrupt (header says 0x", std::hex,
           info.checksum, ", the header and tokens give 0x", actual, std::dec,
           "); re-run meap prepare for this file");
  }
  return r;
}

ShardReader::ShardReader(ShardReader&& other) noexcept
    : path_(std::move(other.path_)),
      info_(other.info_),
      map_(std::exchange(other.map_, nullptr)),
      map_bytes_(std::exchange(other.map_bytes_, 0)) {}

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    info_ = other.info_;
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
  }
  return *this;
}

ShardReader::~ShardReader() { unmap(); }

void ShardReader::unmap() noexcept {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

void ShardReader::read(uint64_t offset, size_t n, int32_t* out) const {
  if (offset > info_.n_tokens || n > info_.n_tokens - offset)
    fail(path_, ": read of tokens [", offset, ", ", offset + n, ") is past the end (the shard has ",
         info_.n_tokens, " tokens)");
  const auto* data = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
  // max over the range instead of a branch per token keeps the copy loop vectorizable.
  uint32_t max_id = 0;
  if (info_.token_bytes == 2) {
    const unsigned char* p = data + 2 * offset;
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = load<uint16_t>(p + 2 * i);
      out[i] = v;
      max_id = std::max<uint32_t>(max_id, v);
    }
  } else {
    const unsigned char* p = data + 4 * offset;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t v = load<uint32_t>(p + 4 * i);
      out[i] = static_cast<int32_t>(v);
      max_id = std::max(max_id, v);
    }
  }
  if (n > 0 && max_id >= info_.vocab_size) {
    size_t at = 0;
    while (static_cast<uint32_t>(out[at]) < info_.vocab_size) ++at;
    fail(path_, ": token ", offset + at, " has id ", static_cast<uint32_t>(out[at]),
         ", outside the vocab [0, ", info_.vocab_size,
         "): the shard is corrupt (open it with checksum verification to find out early)");
  }
}

// ---- compatibility ------------------------------------------------------------------------

void check_shards_compatible(const std::vector<ShardInfo>& infos,
                             const std::vector<std::string>& paths) {
  MEAP_CHECK(infos.size() == paths.size(), "one path per shard info");
  for (size_t i = 1; i < infos.size(); ++i) {
    if (infos[i].vocab_size != infos[0].vocab_size)
      fail("token shards disagree on the vocab size: '", paths[0], "' has ",
           infos[0].vocab_size, ", '", paths[i], "' has ", infos[i].vocab_size,
           " (were they tokenized with different tokenizers?)");
    if (!same_special(infos[i].special, infos[0].special))
      fail("token shards disagree on the special token ids: '", paths[0], "' has ",
           special_string(infos[0].special), ", '", paths[i], "' has ",
           special_string(infos[i].special));
    if (infos[i].tokenizer_checksum != infos[0].tokenizer_checksum)
      fail("token shards were made with different tokenizers: '", paths[0],
           "' records tokenizer ", checksum_string(infos[0].tokenizer_checksum), ", '",
           paths[i], "' records ", checksum_string(infos[i].tokenizer_checksum));
  }
}

}  // namespace meap
