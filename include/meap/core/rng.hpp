// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): the output is a
// pure function of (key, counter), so any element of any stream can be drawn in any order
// by any thread or rank -- what world-size-invariant init and masking need.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace meap {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

inline PhiloxCounter philox4x32(PhiloxCounter c, PhiloxKey k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

inline PhiloxKey philox_key(uint64_t seed) {
  return {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
}

// Uniform in (0, 1): 24 random bits, offset by half a step so log() is always finite.
inline double uniform_open01(uint32_t bits) { return ((bits >> 8) + 0.5) * (1.0 / 16777216.0); }

// Standard normal number `index` of stream `stream` under `seed` (Box-Muller).
inline double philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const PhiloxCounter r =
      philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                  static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)},
                 philox_key(seed));
  const double u1 = uniform_open01(r[0]), u2 = uniform_open01(r[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// The 32-bit words of one keyed stream, four per Philox block, in order. The counter is
// (block, a, b lo, b hi): every word is a pure function of (key, a, b, word number), whatever
// thread or rank draws it. The MEAP masker keys it by (epoch, global sequence index), the SFT
// builder by (epoch, sample index).
class PhiloxWords {
 public:
  PhiloxWords(PhiloxKey key, uint32_t a, uint64_t b)
      : key_(key), counter_{0u, a, static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32)} {}

  uint32_t next() {
    if (lane_ == 4) {
      block_ = philox4x32(counter_, key_);
      ++counter_[0];  // 2^32 blocks: far more than any sequence draws
      lane_ = 0;
    }
    return block_[lane_++];
  }

  // Uniform in [0, range), range in [1, 2^32), exactly unbiased: Lemire's multiply-shift
  // (ACM TOMACS 2019) rejects the (2^32 mod range) low products that would favour some
  // values. The rejection probability is < range / 2^32, so for range <= 2048 about one draw
  // in two million takes a second word.
  uint32_t below(uint32_t range) {
    uint64_t m = static_cast<uint64_t>(next()) * range;
    uint32_t low = static_cast<uint32_t>(m);
    if (low < range) {
      const uint32_t threshold = (0u - range) % range;
      while (low < threshold) {
        m = static_cast<uint64_t>(next()) * range;
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }

 private:
  PhiloxKey key_;
  PhiloxCounter counter_;
  PhiloxCounter block_{};
  int lane_ = 4;
};

// Position `index` of a keyed pseudo-random permutation of [0, n) for `epoch`, without
// storing it: a 4-round Feistel network on the smallest even bit width covering n,
// cycle-walked back into range (each walk step lands inside with probability > 1/4).
// Memory O(1), any index in O(1). index must be < n.
inline uint64_t philox_permute(PhiloxKey key, uint32_t epoch, uint64_t index, uint64_t n) {
  if (n <= 1) return index;
  int bits = 2;
  while ((uint64_t{1} << bits) < n) bits += 2;
  const int half = bits / 2;
  const uint64_t mask = (uint64_t{1} << half) - 1;
  uint64_t x = index;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (uint32_t round = 0; round < 4; ++round) {
      const PhiloxCounter r = philox4x32(
          {static_cast<uint32_t>(right), static_cast<uint32_t>(right >> 32), round, epoch}, key);
      const uint64_t f = ((static_cast<uint64_t>(r[1]) << 32) | r[0]) & mask;
      const uint64_t next_right = left ^ f;
      left = right;
      right = next_right;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace meap
