#include "meap/data/token_shard.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "meap/core/error.hpp"

namespace meap {

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

}  // namespace

std::string special_tokens_string(const SpecialTokens& s) {
  return str_cat("bos=", s.bos, " eos=", s.eos, " pad=", s.pad, " mask=", s.mask);
}

std::string bad_special_token(const SpecialTokens& s, uint32_t vocab_size) {
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", s.bos}, {"eos", s.eos}, {"pad", s.pad}, {"mask", s.mask}};
  for (const auto& [name, id] : ids)
    if (id != -1 && (id < 0 || static_cast<uint64_t>(id) >= vocab_size))
      return str_cat(name, "=", id);
  return {};
}

uint64_t shard_checksum(const void* header, uint64_t tokens_xxh3) {
  unsigned char h[kShardHeaderBytes];
  std::memcpy(h, header, sizeof h);
  store_le<uint64_t>(h + kOffChecksum, 0);
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
  if (const std::string bad = bad_special_token(special_, vocab_size_); !bad.empty())
    fail(path_, ": special token id ", bad, " is outside the vocab [0, ", vocab_size_,
         ") (use -1 for a token the tokenizer does not have)");
  token_bytes_ = vocab_size_ <= 65536 ? 2 : 4;
  file_ = std::make_unique<TempFile>(path_ + ".tmp");
  // The header is written last (it holds the count and checksum); reserve its bytes now.
  // (A constructor that throws destroys file_, which removes the temporary file.)
  const unsigned char zeros[kShardHeaderBytes] = {};
  write_all(file_->fd(), zeros, sizeof zeros, file_->path());
  buffer_.reserve(kChunkBytes);
}

void ShardWriter::append(const int32_t* tokens, size_t n) {
  if (!file_) fail(path_, ": append() after finish() or a failed write");
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
          store_le(dst + 2 * k, static_cast<uint16_t>(tokens[i + k]));
      } else {
        std::memcpy(dst, tokens + i, take * 4);  // ids are >= 0: int32 bits == uint32 bits
      }
      i += take;
      n_tokens_ += take;
      if (buffer_.size() == kChunkBytes) flush();
    }
  } catch (...) {
    file_.reset();
    throw;
  }
}

// Writes the buffered bytes, hashing them on the way.
void ShardWriter::flush() {
  hash_.update(buffer_.data(), buffer_.size());
  write_all(file_->fd(), buffer_.data(), buffer_.size(), file_->path());
  buffer_.clear();
}

void ShardWriter::finish() {
  if (!file_) fail(path_, ": finish() called twice or after a failed write");
  try {
    flush();
    buffer_.shrink_to_fit();

    unsigned char h[kShardHeaderBytes] = {};
    std::memcpy(h, kMagic, sizeof kMagic);
    store_le<uint32_t>(h + kOffVersion, kShardVersion);
    store_le<uint32_t>(h + kOffTokenBytes, token_bytes_);
    store_le<uint64_t>(h + kOffNTokens, n_tokens_);
    store_le<uint32_t>(h + kOffVocab, vocab_size_);
    store_le<int32_t>(h + kOffBos, special_.bos);
    store_le<int32_t>(h + kOffEos, special_.eos);
    store_le<int32_t>(h + kOffPad, special_.pad);
    store_le<int32_t>(h + kOffMask, special_.mask);
    store_le<uint32_t>(h + kOffReserved, 0);
    store_le<uint64_t>(h + kOffTokenizer, tokenizer_checksum_);
    store_le<uint64_t>(h + kOffChecksum, shard_checksum(h, hash_.digest()));
    pwrite_all(file_->fd(), h, sizeof h, 0, file_->path());
    file_->sync_and_close();
    file_->commit_as(path_);  // the temporary file is now the shard
  } catch (...) {
    file_.reset();
    throw;
  }
  file_.reset();
}

// ---- ShardReader ------------------------------------------------------------------------

ShardReader ShardReader::open(const std::string& path, bool verify_checksum) {
  ShardReader r;
  r.path_ = path;

  r.file_ = MappedFile::open(path, "token shard", "a", kShardHeaderBytes);
  const unsigned char* h = r.file_.data();
  const uint64_t file_bytes = r.file_.size();

  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    fail(path, ": not a meap token shard (bad magic; expected \"MEAPTOK\\0\")");
  ShardInfo& info = r.info_;
  info.version = load_le<uint32_t>(h + kOffVersion);
  if (info.version > kShardVersion)
    fail(path, ": token shard format version ", info.version,
         " was written by a newer meap; this build reads up to version ", kShardVersion,
         " (update meap or re-run meap prepare)");
  if (info.version == 0) fail(path, ": invalid token shard format version 0 (corrupt header)");
  if (info.version < kShardVersion)
    fail(path, ": token shard format version ", info.version, " is no longer read: it has no "
         "tokenizer checksum and an older shard checksum; re-run meap prepare to rewrite it "
         "(version ", kShardVersion, ")");
  info.token_bytes = load_le<uint32_t>(h + kOffTokenBytes);
  if (info.token_bytes != 2 && info.token_bytes != 4)
    fail(path, ": invalid token width ", info.token_bytes, " bytes (must be 2 or 4)");
  info.n_tokens = load_le<uint64_t>(h + kOffNTokens);
  info.vocab_size = load_le<uint32_t>(h + kOffVocab);
  info.special.bos = load_le<int32_t>(h + kOffBos);
  info.special.eos = load_le<int32_t>(h + kOffEos);
  info.special.pad = load_le<int32_t>(h + kOffPad);
  info.special.mask = load_le<int32_t>(h + kOffMask);
  info.checksum = load_le<uint64_t>(h + kOffChecksum);
  info.tokenizer_checksum = load_le<uint64_t>(h + kOffTokenizer);

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
  if (const std::string bad = bad_special_token(info.special, info.vocab_size); !bad.empty())
    fail(path, ": corrupt header: special token id ", bad, " is outside the vocab [0, ",
         info.vocab_size, ")");
  if (load_le<uint32_t>(h + kOffReserved) != 0)
    fail(path, ": corrupt header: reserved bytes are not zero");

  if (verify_checksum) {
    const uint64_t actual = shard_checksum(h, r.file_.xxh3_from(kShardHeaderBytes));
    if (actual != info.checksum)
      fail(path, ": checksum mismatch: the shard is corrupt (header says 0x", std::hex,
           info.checksum, ", the header and tokens give 0x", actual, std::dec,
           "); re-run meap prepare for this file");
  }
  return r;
}

void ShardReader::read(uint64_t offset, size_t n, int32_t* out) const {
  if (offset > info_.n_tokens || n > info_.n_tokens - offset)
    fail(path_, ": read of tokens [", offset, ", ", offset + n, ") is past the end (the shard has ",
         info_.n_tokens, " tokens)");
  const unsigned char* data = file_.data() + kShardHeaderBytes;
  // max over the range instead of a branch per token keeps the copy loop vectorizable.
  uint32_t max_id = 0;
  if (info_.token_bytes == 2) {
    const unsigned char* p = data + 2 * offset;
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = load_le<uint16_t>(p + 2 * i);
      out[i] = v;
      max_id = std::max<uint32_t>(max_id, v);
    }
  } else {
    const unsigned char* p = data + 4 * offset;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t v = load_le<uint32_t>(p + 4 * i);
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
    if (infos[i].special != infos[0].special)
      fail("token shards disagree on the special token ids: '", paths[0], "' has ",
           special_tokens_string(infos[0].special), ", '", paths[i], "' has ",
           special_tokens_string(infos[i].special));
    if (infos[i].tokenizer_checksum != infos[0].tokenizer_checksum)
      fail("token shards were made with different tokenizers: '", paths[0],
           "' records tokenizer ", checksum_string(infos[0].tokenizer_checksum), ", '",
           paths[i], "' records ", checksum_string(infos[i].tokenizer_checksum));
  }
}

}  // namespace meap
