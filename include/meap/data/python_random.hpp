// PythonRandom: the part of CPython's `random` module that the MEAP authors' released code
// uses to draw its masks -- `random.seed(a)` for a non-negative int a, then
// `random.sample(range(n), k)` -- reproduced bit for bit: the same Mersenne Twister
// (MT19937, seeded by init_by_array with a's 32-bit words), the same `_randbelow`
// (getrandbits of n.bit_length() bits, rejecting values >= n) and the same two branches of
// `sample` (a shrinking pool for small n, a rejection set for large n). Checked against
// python3 itself by tests/scripts/check_authors_masks.py.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace meap {

class PythonRandom {
 public:
  // random.seed(seed): init_genrand(19650218) then init_by_array over seed's 32-bit words,
  // least significant first (one word, 0, for seed 0).
  explicit PythonRandom(uint64_t seed);

  // The next 32-bit output of the generator (CPython's genrand_uint32).
  uint32_t next_u32();
  // random.getrandbits(k) for 1 <= k <= 32: the top k bits of one output.
  uint32_t getrandbits(int k);
  // random._randbelow(n) for 1 <= n < 2^32: uniform in [0, n).
  uint32_t randbelow(uint32_t n);
  // random.sample(range(n), k), in the order Python returns it (n < 2^32, 0 <= k <= n).
  std::vector<int64_t> sample_range(int64_t n, int64_t k);

 private:
  static constexpr int kN = 624;
  std::array<uint32_t, kN> mt_{};
  int index_ = kN;
};

}  // namespace meap
