#include "meap/data/sft_shard.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "meap/core/error.hpp"

namespace meap {

namespace {

// Header layout (96 bytes, little endian):
//   0  magic "MEAPSFT\0"   8  u32 version    12 u32 token_bytes   16 u64 n_tokens
//   24 u64 n_samples       32 u32 vocab_size 36 i32 bos  40 i32 eos  44 i32 pad  48 i32 mask
//   52 u32 reserved        56 u64 tokenizer_checksum    64 u64 checksum   72 24 zero bytes
constexpr char kMagic[8] = {'M', 'E', 'A', 'P', 'S', 'F', 'T', '\0'};
constexpr size_t kOffVersion = 8, kOffTokenBytes = 12, kOffNTokens = 16, kOffNSamples = 24,
                 kOffVocab = 32, kOffBos = 36, kOffEos = 40, kOffPad = 44, kOffMask = 48,
                 kOffReserved = 52, kOffTokenizer = 56, kOffChecksum = 64, kOffPadding = 72;
static_assert(kOffPadding + 24 == kSftShardHeaderBytes);

uint64_t round_up8(uint64_t n) { return (n + 7) / 8 * 8; }

// Byte offsets of the three body sections, and the exact file size.
struct Sections {
  uint64_t roles_at = 0, index_at = 0, file_bytes = 0;
  bool overflow = false;
};

Sections sections(uint64_t n_tokens, uint64_t n_samples, uint32_t token_bytes) {
  Sections s;
  uint64_t token_section = 0, index_bytes = 0;
  if (__builtin_mul_overflow(n_tokens, uint64_t{token_bytes}, &token_section) ||
      n_tokens > (uint64_t{1} << 56) || n_samples > (uint64_t{1} << 56) ||
      __builtin_mul_overflow(n_samples + 1, uint64_t{8}, &index_bytes)) {
    s.overflow = true;
    return s;
  }
  s.roles_at = kSftShardHeaderBytes + round_up8(token_section);
  s.index_at = s.roles_at + round_up8(n_tokens);
  s.file_bytes = s.index_at + index_bytes;
  return s;
}

}  // namespace

const char* sft_role_name(SftRole role) {
  switch (role) {
    case SftRole::template_text: return "template";
    case SftRole::prompt: return "prompt";
    case SftRole::answer: return "answer";
    case SftRole::answer_end: return "answer_end";
  }
  return "?";
}

uint64_t sft_shard_checksum(const void* header, uint64_t body_xxh3) {
  unsigned char h[kSftShardHeaderBytes];
  std::memcpy(h, header, sizeof h);
  store_le<uint64_t>(h + kOffChecksum, 0);
  return xxh3_64(h, sizeof h, body_xxh3);
}

// ---- SftShardWriter ---------------------------------------------------------------------

SftShardWriter::SftShardWriter(std::string path, uint32_t vocab_size, SpecialTokens special,
                               uint64_t tokenizer_checksum)
    : path_(std::move(path)),
      vocab_size_(vocab_size),
      token_bytes_(vocab_size <= 65536 ? 2 : 4),
      special_(special),
      tokenizer_checksum_(tokenizer_checksum) {
  if (vocab_size_ == 0) fail(path_, ": cannot write an SFT shard with vocab_size 0");
  if (const std::string bad = bad_special_token(special, vocab_size_); !bad.empty())
    fail(path_, ": special token id ", bad, " is outside the vocab [0, ", vocab_size_, ")");
  if (special.bos < 0 || special.eos < 0)
    fail(path_, ": SFT samples are [BOS] ... [EOS]: the tokenizer needs both (bos = ",
         special.bos, ", eos = ", special.eos, ")");
}

void SftShardWriter::append(const int32_t* tokens, const uint8_t* roles, size_t n) {
  if (done_) fail(path_, ": append() after finish()");
  const uint64_t sample = n_samples();
  if (n < 2) fail(path_, ": SFT sample ", sample, " has ", n, " tokens; at least 2 ([BOS] ... [EOS])");
  if (tokens[0] != special_.bos)
    fail(path_, ": SFT sample ", sample, " starts with token ", tokens[0], ", not BOS ",
         special_.bos);
  bool has_answer = false;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || static_cast<uint64_t>(tokens[i]) >= vocab_size_)
      fail(path_, ": SFT sample ", sample, ": token id ", tokens[i], " (token ", i,
           ") is outside the vocab [0, ", vocab_size_, ")");
    if (roles[i] >= kSftRoleCount)
      fail(path_, ": SFT sample ", sample, ": role ", int(roles[i]), " (token ", i,
           ") is not one of 0..", kSftRoleCount - 1);
    has_answer |= roles[i] == static_cast<uint8_t>(SftRole::answer);
  }
  if (!has_answer) fail(path_, ": SFT sample ", sample, " has no answer token");
  const size_t at = tokens_.size();
  tokens_.resize(at + n * token_bytes_);
  for (size_t i = 0; i < n; ++i) {
    if (token_bytes_ == 2)
      store_le(tokens_.data() + at + 2 * i, static_cast<uint16_t>(tokens[i]));
    else
      store_le(tokens_.data() + at + 4 * i, static_cast<uint32_t>(tokens[i]));
  }
  roles_.insert(roles_.end(), roles, roles + n);
  offsets_.push_back(roles_.size());
}

void SftShardWriter::finish() {
  if (done_) fail(path_, ": finish() called twice");
  done_ = true;
  const Sections sec = sections(n_tokens(), n_samples(), token_bytes_);
  std::string file(sec.file_bytes, '\0');
  auto* p = reinterpret_cast<unsigned char*>(file.data());
  std::memcpy(p + kSftShardHeaderBytes, tokens_.data(), tokens_.size());
  std::memcpy(p + sec.roles_at, roles_.data(), roles_.size());
  std::memcpy(p + sec.index_at, offsets_.data(), offsets_.size() * 8);
  std::memcpy(p, kMagic, sizeof kMagic);
  store_le<uint32_t>(p + kOffVersion, kSftShardVersion);
  store_le<uint32_t>(p + kOffTokenBytes, token_bytes_);
  store_le<uint64_t>(p + kOffNTokens, n_tokens());
  store_le<uint64_t>(p + kOffNSamples, n_samples());
  store_le<uint32_t>(p + kOffVocab, vocab_size_);
  store_le<int32_t>(p + kOffBos, special_.bos);
  store_le<int32_t>(p + kOffEos, special_.eos);
  store_le<int32_t>(p + kOffPad, special_.pad);
  store_le<int32_t>(p + kOffMask, special_.mask);
  store_le<uint64_t>(p + kOffTokenizer, tokenizer_checksum_);
  store_le<uint64_t>(p + kOffChecksum,
                     sft_shard_checksum(p, xxh3_64(p + kSftShardHeaderBytes,
                                                   file.size() - kSftShardHeaderBytes)));
  std::vector<unsigned char>().swap(tokens_);
  write_file_atomic(path_, file);
}

// ---- SftShardReader ---------------------------------------------------------------------

SftShardReader SftShardReader::open(const std::string& path, bool verify_checksum) {
  SftShardReader r;
  r.path_ = path;
  r.file_ = MappedFile::open(path, "SFT shard", "an", kSftShardHeaderBytes);
  const unsigned char* h = r.file_.data();
  const uint64_t file_bytes = r.file_.size();

  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) {
    if (std::memcmp(h, "MEAPTOK", 7) == 0)
      fail(path, ": this is a pre-training token shard, not an SFT shard (make SFT shards with "
                 "`meap prepare --sft`)");
    fail(path, ": not a meap SFT shard (bad magic; expected \"MEAPSFT\\0\")");
  }
  SftShardInfo& info = r.info_;
  info.version = load_le<uint32_t>(h + kOffVersion);
  if (info.version > kSftShardVersion)
    fail(path, ": SFT shard format version ", info.version,
         " was written by a newer meap; this build reads up to version ", kSftShardVersion);
  if (info.version == 0) fail(path, ": invalid SFT shard format version 0 (corrupt header)");
  if (info.version < kSftShardVersion)
    fail(path, ": SFT shard format version ", info.version, " is no longer read (its checksums "
         "are not XXH3); re-run meap prepare --sft to rewrite it (version ", kSftShardVersion,
         ")");
  info.token_bytes = load_le<uint32_t>(h + kOffTokenBytes);
  if (info.token_bytes != 2 && info.token_bytes != 4)
    fail(path, ": invalid token width ", info.token_bytes, " bytes (must be 2 or 4)");
  info.n_tokens = load_le<uint64_t>(h + kOffNTokens);
  info.n_samples = load_le<uint64_t>(h + kOffNSamples);
  info.vocab_size = load_le<uint32_t>(h + kOffVocab);
  info.special = {load_le<int32_t>(h + kOffBos), load_le<int32_t>(h + kOffEos),
                  load_le<int32_t>(h + kOffPad), load_le<int32_t>(h + kOffMask)};
  info.tokenizer_checksum = load_le<uint64_t>(h + kOffTokenizer);
  info.checksum = load_le<uint64_t>(h + kOffChecksum);

  const Sections sec = sections(info.n_tokens, info.n_samples, info.token_bytes);
  if (sec.overflow)
    fail(path, ": corrupt header: ", info.n_tokens, " tokens / ", info.n_samples,
         " samples is impossibly large");
  if (file_bytes < sec.file_bytes)
    fail(path, ": SFT shard is truncated: the header promises ", info.n_samples, " samples, ",
         info.n_tokens, " tokens (", sec.file_bytes, " bytes) but the file has ", file_bytes,
         " bytes");
  if (file_bytes > sec.file_bytes)
    fail(path, ": SFT shard has trailing bytes: the header promises ", info.n_samples,
         " samples, ", info.n_tokens, " tokens (", sec.file_bytes, " bytes) but the file has ",
         file_bytes, " bytes");
  if (info.vocab_size == 0) fail(path, ": corrupt header: vocab_size is 0");
  if (info.token_bytes == 2 && info.vocab_size > 65536)
    fail(path, ": corrupt header: vocab_size ", info.vocab_size, " does not fit 2-byte ids");
  const SpecialTokens& s = info.special;
  if (!bad_special_token(s, info.vocab_size).empty() || s.bos < 0 || s.eos < 0)
    fail(path, ": corrupt header: special ids ", special_tokens_string(s), " do not fit the vocab [0, ",
         info.vocab_size, ") or lack BOS/EOS");
  bool zero = load_le<uint32_t>(h + kOffReserved) == 0;
  for (size_t i = kOffPadding; i < kSftShardHeaderBytes; ++i) zero &= h[i] == 0;
  if (!zero) fail(path, ": corrupt header: reserved bytes are not zero");

  if (verify_checksum) {
    const uint64_t actual = sft_shard_checksum(h, r.file_.xxh3_from(kSftShardHeaderBytes));
    if (actual != info.checksum)
      fail(path, ": checksum mismatch: the SFT shard is corrupt (header says 0x", std::hex,
           info.checksum, ", the header and data give 0x", actual, std::dec,
           "); re-run meap prepare --sft for this file");
  }

  // The sample index and the roles, checked once so that the streamer can trust them.
  r.roles_at_ = sec.roles_at;
  r.index_at_ = sec.index_at;
  if (r.offset(0) != 0 || r.offset(info.n_samples) != info.n_tokens)
    fail(path, ": corrupt sample index: it must start at token 0 and end at token ",
         info.n_tokens, " (starts at ", r.offset(0), ", ends at ", r.offset(info.n_samples), ")");
  const uint8_t* roles = h + r.roles_at_;
  r.answer_counts_.resize(info.n_samples);
  for (uint64_t i = 0; i < info.n_samples; ++i) {
    const uint64_t a = r.offset(i), b = r.offset(i + 1);
    if (b < a + 2 || b > info.n_tokens)
      fail(path, ": corrupt sample index: sample ", i, " spans tokens [", a, ", ", b,
           "); every sample has at least 2 tokens inside the shard");
    uint32_t answers = 0;
    for (uint64_t t = a; t < b; ++t) {
      if (roles[t] >= kSftRoleCount)
        fail(path, ": corrupt roles: token ", t, " (sample ", i, ") has role ", int(roles[t]));
      answers += roles[t] == static_cast<uint8_t>(SftRole::answer);
    }
    if (answers == 0) fail(path, ": sample ", i, " has no answer token (corrupt roles)");
    r.answer_counts_[i] = answers;
  }
  return r;
}

uint64_t SftShardReader::offset(uint64_t i) const {
  return load_le<uint64_t>(file_.data() + index_at_ + 8 * i);
}

int64_t SftShardReader::sample_tokens(uint64_t i) const {
  MEAP_CHECK(i < info_.n_samples, "sample ", i, " of ", info_.n_samples);
  return static_cast<int64_t>(offset(i + 1) - offset(i));
}

const uint8_t* SftShardReader::roles(uint64_t i) const {
  MEAP_CHECK(i < info_.n_samples, "sample ", i, " of ", info_.n_samples);
  return file_.data() + roles_at_ + offset(i);
}

void SftShardReader::read_tokens(uint64_t i, std::vector<int32_t>& out) const {
  MEAP_CHECK(i < info_.n_samples, "sample ", i, " of ", info_.n_samples);
  const uint64_t a = offset(i), n = offset(i + 1) - a;
  out.resize(n);
  const auto* data = file_.data() + kSftShardHeaderBytes;
  uint32_t max_id = 0;
  for (uint64_t k = 0; k < n; ++k) {
    const uint32_t v = info_.token_bytes == 2 ? load_le<uint16_t>(data + 2 * (a + k))
                                              : load_le<uint32_t>(data + 4 * (a + k));
    out[k] = static_cast<int32_t>(v);
    max_id = std::max(max_id, v);
  }
  if (max_id >= info_.vocab_size)
    fail(path_, ": sample ", i, " holds token id ", max_id, ", outside the vocab [0, ",
         info_.vocab_size, "): the shard is corrupt");
}

void check_sft_shards_compatible(const std::vector<SftShardInfo>& infos,
                                 const std::vector<std::string>& paths) {
  MEAP_CHECK(infos.size() == paths.size(), "one path per shard info");
  for (size_t i = 1; i < infos.size(); ++i) {
    const SftShardInfo &a = infos[0], &b = infos[i];
    if (a.vocab_size != b.vocab_size)
      fail("SFT shards disagree on the vocab size: '", paths[0], "' has ", a.vocab_size, ", '",
           paths[i], "' has ", b.vocab_size);
    if (a.special != b.special)
      fail("SFT shards disagree on the special token ids: '", paths[0], "' has ",
           special_tokens_string(a.special), ", '", paths[i], "' has ",
           special_tokens_string(b.special));
    if (a.tokenizer_checksum != b.tokenizer_checksum)
      fail("SFT shards were made with different tokenizers: '", paths[0],
           "' has tokenizer checksum 0x", std::hex, a.tokenizer_checksum, ", '", paths[i],
           "' has 0x", b.tokenizer_checksum, std::dec);
  }
}

}  // namespace meap
