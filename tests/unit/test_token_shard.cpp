// Token shards: round trips at both token widths, the byte layout and checksum as documented
// in docs/formats.md, atomic writes, and refusal of out-of-vocab ids, truncated, corrupt,
// foreign, newer and mismatched shards.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "meap/core/error.hpp"
#include "meap/data/token_shard.hpp"
#include "fixtures.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using meap::ShardInfo;
using meap::ShardReader;
using meap::ShardWriter;
using meap::SpecialTokens;

struct TempDir : meap_test::TempDir {
  TempDir() : meap_test::TempDir("meap_shard") {}
};

using meap_test::error_of;

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

uint64_t le(const std::vector<unsigned char>& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{b[at + i]} << (8 * i);
  return v;
}

void put_le(std::vector<unsigned char>& b, size_t at, int n, uint64_t v) {
  REQUIRE(at + n <= b.size());
  for (int i = 0; i < n; ++i) b.at(at + i) = static_cast<unsigned char>(v >> (8 * i));
}

// The checksum exactly as docs/formats.md describes it, written independently of the library
// from the bytes, so a divergence between the code and the documentation fails here.
// XXH3-64 of the header with its checksum field zeroed, seeded with XXH3-64 of the tokens.
uint64_t documented_checksum(const unsigned char* file, size_t token_bytes) {
  unsigned char h[64];
  std::memcpy(h, file, 64);
  std::memset(h + 48, 0, 8);
  return XXH3_64bits_withSeed(h, 64, XXH3_64bits(file + 64, token_bytes));
}

constexpr uint64_t kTokenizerChecksum = 0x0123456789ABCDEFull;

// Deterministic ids in [0, vocab) that use the high bits of the width (so a narrowing bug shows).
std::vector<int32_t> make_tokens(size_t n, uint32_t vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t[i] = static_cast<int32_t>(x % vocab);
  }
  if (n > 0) t[n - 1] = static_cast<int32_t>(vocab - 1);
  return t;
}

// Writes tokens in appends of the given sizes (cycled) and finishes.
void write_shard(const std::string& path, uint32_t vocab, SpecialTokens special,
                 const std::vector<int32_t>& tokens, std::vector<size_t> pieces = {1000},
                 uint64_t tokenizer_checksum = kTokenizerChecksum) {
  ShardWriter w(path, vocab, special, tokenizer_checksum);
  size_t at = 0, k = 0;
  while (at < tokens.size()) {
    const size_t n = std::min(pieces[k++ % pieces.size()], tokens.size() - at);
    w.append(tokens.data() + at, n);
    at += n;
  }
  CHECK(w.n_tokens() == tokens.size());
  w.finish();
}

SpecialTokens gpt2_like(uint32_t vocab) {
  SpecialTokens s;
  s.bos = static_cast<int32_t>(vocab - 3);
  s.eos = static_cast<int32_t>(vocab - 2);
  s.mask = static_cast<int32_t>(vocab - 1);
  return s;  // pad stays -1
}

}  // namespace

TEST_CASE("token shard round trip at both widths, header bytes as documented", "[shard]") {
  TempDir dir;
  const uint32_t vocab = GENERATE(50000u, 100000u);
  const uint32_t width = vocab <= 65536 ? 2 : 4;
  // A few million tokens in uneven appends, so chunk boundaries fall mid-append; odd count,
  // so the checksum has a partial last word at width 2.
  const size_t n = 3'000'001;
  const auto tokens = make_tokens(n, vocab, vocab);
  const SpecialTokens special = gpt2_like(vocab);
  const std::string path = dir.file("train-000.bin");
  write_shard(path, vocab, special, tokens, {1, 777'777, 13, 1'500'000});

  REQUIRE(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const auto bytes = read_bytes(path);
  REQUIRE(bytes.size() == 64 + n * width);
  CHECK(std::memcmp(bytes.data(), "MEAPTOK\0", 8) == 0);
  CHECK(le(bytes, 8, 4) == 2);
  CHECK(le(bytes, 12, 4) == width);
  CHECK(le(bytes, 16, 8) == n);
  CHECK(le(bytes, 24, 4) == vocab);
  CHECK(static_cast<int32_t>(le(bytes, 28, 4)) == special.bos);
  CHECK(static_cast<int32_t>(le(bytes, 32, 4)) == special.eos);
  CHECK(static_cast<int32_t>(le(bytes, 36, 4)) == -1);
  CHECK(static_cast<int32_t>(le(bytes, 40, 4)) == special.mask);
  CHECK(le(bytes, 44, 4) == 0);
  CHECK(le(bytes, 56, 8) == kTokenizerChecksum);
  CHECK(le(bytes, 48, 8) == documented_checksum(bytes.data(), n * width));
  CHECK(meap::shard_checksum(bytes.data(), XXH3_64bits(bytes.data() + 64, n * width)) ==
        le(bytes, 48, 8));
  // Token 1 stored little-endian at its width.
  CHECK(le(bytes, 64 + width, static_cast<int>(width)) == static_cast<uint64_t>(tokens[1]));

  const ShardReader r = ShardReader::open(path);
  const ShardInfo& info = r.info();
  CHECK(info.version == meap::kShardVersion);
  CHECK(info.token_bytes == width);
  CHECK(info.n_tokens == n);
  CHECK(r.size() == n);
  CHECK(info.vocab_size == vocab);
  CHECK(info.special.bos == special.bos);
  CHECK(info.special.eos == special.eos);
  CHECK(info.special.pad == -1);
  CHECK(info.special.mask == special.mask);
  CHECK(r.path() == path);

  std::vector<int32_t> all(n, -7);
  r.read(0, n, all.data());
  // The index of the first difference (n when none): printing two 3M-element vectors on
  // failure would take Catch minutes.
  const auto first_diff = std::mismatch(all.begin(), all.end(), tokens.begin()).first - all.begin();
  CHECK(first_diff == static_cast<ptrdiff_t>(n));
}

TEST_CASE("token shard sub-range reads and range checks", "[shard]") {
  TempDir dir;
  const uint32_t vocab = GENERATE(50000u, 100000u);
  const auto tokens = make_tokens(10'000, vocab, 7);
  const std::string path = dir.file("s.bin");
  write_shard(path, vocab, {}, tokens, {333});
  const ShardReader r = ShardReader::open(path);

  for (const auto& [off, len] : std::vector<std::pair<size_t, size_t>>{
           {0, 1}, {1, 3}, {4095, 2}, {5000, 5000}, {9999, 1}, {10000, 0}, {123, 4567}}) {
    std::vector<int32_t> out(len + 1, -7);
    r.read(off, len, out.data());
    CHECK(std::equal(out.begin(), out.begin() + static_cast<ptrdiff_t>(len),
                     tokens.begin() + static_cast<ptrdiff_t>(off)));
    CHECK(out[len] == -7);  // nothing written past n
  }
  int32_t one = 0;
  CHECK_THAT(error_of([&] { r.read(10'000, 1, &one); }), Contains("past the end") && Contains(path));
  CHECK_THAT(error_of([&] { r.read(9'999, 2, &one); }), Contains("past the end"));
  CHECK_THAT(error_of([&] { r.read(UINT64_MAX, 2, &one); }), Contains("past the end"));

  // Moving a reader keeps the mapping valid.
  ShardReader moved = ShardReader::open(path);
  ShardReader target = std::move(moved);
  target.read(42, 1, &one);
  CHECK(one == tokens[42]);
}

TEST_CASE("token shard: empty shard and tiny tails", "[shard]") {
  TempDir dir;
  for (size_t n : {0, 1, 2, 3, 4, 5}) {
    const std::string path = dir.file("t" + std::to_string(n) + ".bin");
    const auto tokens = make_tokens(n, 1000, n + 1);
    write_shard(path, 1000, {}, tokens);
    const ShardReader r = ShardReader::open(path);
    REQUIRE(r.size() == n);
    std::vector<int32_t> out(n);
    r.read(0, n, out.data());
    CHECK(out == tokens);
  }
}

TEST_CASE("token shard writer refuses out-of-vocab ids and special ids", "[shard]") {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  {
    ShardWriter w(path, 50000, {});
    const std::vector<int32_t> ok = {1, 2, 3};
    w.append(ok.data(), ok.size());
    const std::vector<int32_t> bad = {4, 50000, 5};
    const std::string msg = error_of([&] { w.append(bad.data(), bad.size()); });
    CHECK_THAT(msg, Contains("50000") && Contains(path) && Contains("outside the vocab"));
    CHECK_THAT(msg, Contains("token 4 "));  // its position in the shard
    const std::vector<int32_t> neg = {-1};
    CHECK_THAT(error_of([&] { w.append(neg.data(), 1); }), Contains("-1") && Contains(path));
    CHECK(w.n_tokens() == 3);  // refused calls append nothing
    w.finish();
  }
  CHECK(ShardReader::open(path).size() == 3);

  SpecialTokens s;
  s.mask = 50000;
  CHECK_THAT(error_of([&] { ShardWriter(dir.file("m.bin"), 50000, s); }),
             Contains("mask=50000") && Contains("m.bin"));
  CHECK_FALSE(fs::exists(dir.file("m.bin.tmp")));
  CHECK_THAT(error_of([&] { ShardWriter(dir.file("z.bin"), 0, {}); }), Contains("vocab_size 0"));
}

TEST_CASE("an unfinished token shard writer leaves no file", "[shard]") {
  TempDir dir;
  const std::string path = dir.file("partial.bin");
  {
    ShardWriter w(path, 100000, {});
    const auto tokens = make_tokens(3'000'000, 100000, 3);  // more than one chunk on disk
    w.append(tokens.data(), tokens.size());
    CHECK(fs::exists(path + ".tmp"));
    CHECK_FALSE(fs::exists(path));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(fs::is_empty(dir.path()));

  // Finishing twice is refused and the shard stays valid.
  ShardWriter w(path, 100, {});
  w.finish();
  CHECK_THAT(error_of([&] { w.finish(); }), Contains("finish"));
  CHECK(ShardReader::open(path).size() == 0);
}

TEST_CASE("token shard reader refuses damaged files", "[shard]") {
  TempDir dir;
  const std::string good = dir.file("good.bin");
  const auto tokens = make_tokens(100'000, 50000, 11);
  write_shard(good, 50000, gpt2_like(50000), tokens);
  const auto bytes = read_bytes(good);
  const std::string bad = dir.file("bad.bin");

  SECTION("truncated") {
    write_bytes(bad, {bytes.begin(), bytes.end() - 3});
    const std::string msg = error_of([&] { ShardReader::open(bad); });
    CHECK_THAT(msg, Contains("truncated") && Contains(bad));
    CHECK_THAT(msg, Contains(std::to_string(bytes.size())) &&
                        Contains(std::to_string(bytes.size() - 3)));
  }
  SECTION("shorter than the header") {
    write_bytes(bad, {bytes.begin(), bytes.begin() + 40});
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }), Contains("header") && Contains(bad));
  }
  SECTION("trailing bytes") {
    auto b = bytes;
    b.push_back(0);
    b.push_back(0);
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }),
               Contains("trailing bytes") && Contains(std::to_string(b.size())) && Contains(bad));
  }
  SECTION("a corrupt token byte") {
    auto b = bytes;
    b[64 + 2 * 54'321 + 1] ^= 0x01;  // a high byte: the id may still be inside the vocab
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }),
               Contains("checksum mismatch") && Contains("corrupt") && Contains(bad));
    // Without verification it opens; the bytes are what is on disk.
    const ShardReader r = ShardReader::open(bad, /*verify_checksum=*/false);
    int32_t v = 0;
    r.read(54'321, 1, &v);
    CHECK(v == (tokens[54'321] ^ 0x100));
  }
  SECTION("an out-of-vocab id, unverified, is refused by read") {
    auto b = bytes;
    put_le(b, 64 + 2 * 777, 2, 65535);
    write_bytes(bad, b);
    const ShardReader r = ShardReader::open(bad, false);
    std::vector<int32_t> out(1000);
    CHECK_THAT(error_of([&] { r.read(500, 1000, out.data()); }),
               Contains("token 777") && Contains("65535") && Contains(bad));
  }
  SECTION("wrong magic") {
    auto b = bytes;
    b[3] = 'X';
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }), Contains("magic") && Contains(bad));
  }
  SECTION("newer version") {
    auto b = bytes;
    put_le(b, 8, 4, 3);
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }),
               Contains("written by a newer meap") && Contains(bad));
  }
  SECTION("version 1 is refused: re-run meap prepare") {
    auto b = bytes;
    put_le(b, 8, 4, 1);
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }),
               Contains("version 1") && Contains("re-run meap prepare") && Contains(bad));
  }
  SECTION("a header field changed to another valid value (bos, pad, tokenizer)") {
    for (const auto& [offset, width, value] :
         {std::tuple{28, 4, 5}, std::tuple{36, 4, 7}, std::tuple{56, 8, 1}}) {
      auto b = bytes;
      put_le(b, offset, width, value);
      write_bytes(bad, b);
      CHECK_THAT(error_of([&] { ShardReader::open(bad); }),
                 Contains("checksum mismatch") && Contains(bad));
    }
  }
  SECTION("bad token width") {
    auto b = bytes;
    put_le(b, 12, 4, 3);
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }), Contains("token width 3"));
  }
  SECTION("special id outside the vocab") {
    auto b = bytes;
    put_le(b, 40, 4, 50000);  // mask
    write_bytes(bad, b);
    CHECK_THAT(error_of([&] { ShardReader::open(bad); }), Contains("mask=50000") && Contains(bad));
  }
  SECTION("missing file") {
    CHECK_THAT(error_of([&] { ShardReader::open(dir.file("nope.bin")); }), Contains("nope.bin"));
  }
  // The untouched file still opens: the refusals above are about the damage.
  CHECK(ShardReader::open(good).size() == tokens.size());
}

TEST_CASE("token shards with different vocabularies or special ids are incompatible", "[shard]") {
  TempDir dir;
  const std::string a = dir.file("a.bin"), b = dir.file("b.bin"), c = dir.file("c.bin"),
                    d = dir.file("d.bin");
  write_shard(a, 50000, gpt2_like(50000), make_tokens(100, 50000, 1));
  write_shard(b, 50000, gpt2_like(50000), make_tokens(200, 50000, 2));
  write_shard(c, 100000, gpt2_like(100000), make_tokens(100, 100000, 3));
  SpecialTokens other = gpt2_like(50000);
  other.pad = 0;
  write_shard(d, 50000, other, make_tokens(100, 50000, 4));

  auto info = [](const std::string& p) { return ShardReader::open(p).info(); };
  CHECK_NOTHROW(meap::check_shards_compatible({info(a), info(b)}, {a, b}));
  const std::string vocab_msg =
      error_of([&] { meap::check_shards_compatible({info(a), info(b), info(c)}, {a, b, c}); });
  CHECK_THAT(vocab_msg, Contains("vocab size") && Contains(a) && Contains(c) &&
                            Contains("50000") && Contains("100000"));
  const std::string special_msg =
      error_of([&] { meap::check_shards_compatible({info(a), info(d)}, {a, d}); });
  CHECK_THAT(special_msg, Contains("special token") && Contains(a) && Contains(d) &&
                              Contains("pad=0"));
  const std::string e = dir.file("e.bin");
  write_shard(e, 50000, gpt2_like(50000), make_tokens(100, 50000, 5), {1000}, 42);
  CHECK_THAT(error_of([&] { meap::check_shards_compatible({info(a), info(e)}, {a, e}); }),
             Contains("different tokenizers") && Contains(a) && Contains(e) &&
                 Contains("xxh3-64:000000000000002a"));
}
