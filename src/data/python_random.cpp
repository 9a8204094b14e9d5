#include "meap/data/python_random.hpp"

#include <bit>
#include <cmath>
#include <unordered_set>

#include "meap/core/error.hpp"

namespace meap {

namespace {

constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu, kUpperMask = 0x80000000u, kLowerMask = 0x7fffffffu;

}  // namespace

// CPython's init_genrand and init_by_array (Modules/_randommodule.c, after Matsumoto and
// Nishimura's mt19937ar.c), for a key of one or two 32-bit words.
PythonRandom::PythonRandom(uint64_t seed) {
  mt_[0] = 19650218u;
  for (int i = 1; i < kN; ++i)
    mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  // abs(seed) as 32-bit words, least significant first; at least one word.
  uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const int key_length = (seed >> 32) != 0 ? 2 : 1;
  int i = 1, j = 0;
  for (int k = std::max(kN, key_length); k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] +
             static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000u;  // non-zero initial state
  index_ = kN;
}

uint32_t PythonRandom::next_u32() {
  if (index_ >= kN) {  // regenerate all kN words at once
    for (int k = 0; k < kN; ++k) {
      const uint32_t y = (mt_[k] & kUpperMask) | (mt_[(k + 1) % kN] & kLowerMask);
      mt_[k] = mt_[(k + kM) % kN] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint32_t PythonRandom::getrandbits(int k) {
  MEAP_CHECK(k >= 1 && k <= 32, "getrandbits: k = ", k, " outside [1, 32]");
  return next_u32() >> (32 - k);
}

uint32_t PythonRandom::randbelow(uint32_t n) {
  MEAP_CHECK(n >= 1, "randbelow: n must be positive");
  const int k = std::bit_width(n);  // n.bit_length(), not (n - 1)'s: Python's choice
  uint32_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

std::vector<int64_t> PythonRandom::sample_range(int64_t n, int64_t k) {
  if (n < 0 || n > int64_t{UINT32_MAX} || k < 0 || k > n)
    fail("random.sample(range(", n, "), ", k, "): sample larger than population or negative");
  std::vector<int64_t> result(static_cast<size_t>(k));
  // Python's estimate of the memory of a k-element set against an n-element list:
  // setsize = 21, plus 4 ** ceil(log(3k, 4)) when k > 5 (math.log(x, b) = log(x) / log(b)).
  int64_t setsize = 21;
  if (k > 5) setsize += static_cast<int64_t>(std::pow(4.0, std::ceil(std::log(3.0 * k) / std::log(4.0))));
  if (n <= setsize) {
    // A pool of the population; each pick is moved out by the last unpicked element.
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = randbelow(static_cast<uint32_t>(n - i));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = randbelow(static_cast<uint32_t>(n));
      while (selected.count(j)) j = randbelow(static_cast<uint32_t>(n));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

}  // namespace meap
