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

}  // namespace meap
