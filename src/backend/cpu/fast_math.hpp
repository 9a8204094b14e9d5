// Helpers of the fast f32 CPU kernels: per-ISA function clones (AVX-512, AVX2, baseline,
// picked at load time) and an exp that the compiler can vectorise, unlike libm's expf.
#pragma once

#include <cstdint>
#include <cstring>

// Compiles a function for x86-64-v4 (AVX-512), v3 (AVX2 + FMA) and the baseline; the
// loader picks the best the CPU has. Loops inside vectorise at that width. OpenMP regions
// are outlined without the clone's target, so cloned functions hold the loops, not the
// parallel regions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MEAP_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MEAP_SIMD_CLONES
#endif

namespace meap::cpu::fast {

// exp(x) for x <= 88 (relative error < 2e-7); x below -87 gives about 1e-38 rather than
// 0 (callers set exact zeros themselves). Branch-free, so a loop over it vectorises:
// x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 Taylor polynomial, 2^n from the
// exponent bits.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // Round x / ln2 to the nearest integer with the 1.5 * 2^23 trick (no libm call).
  constexpr float kShift = 12582912.0f;
  const float t = x * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t ti, ki;
  std::memcpy(&ti, &t, 4);
  const float shift = kShift;
  std::memcpy(&ki, &shift, 4);
  const int32_t bits = (ti - ki + 127) << 23;  // 2^n as a float's bits
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

}  // namespace meap::cpu::fast
