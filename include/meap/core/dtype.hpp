// Element types of tensors, their sizes and names, and the bf16 conversions.
// f64 exists for the CPU backend's double-precision gradient checks.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace meap {

enum class DType : uint8_t { f32, f64, bf16, i32 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

// Names as the safetensors format spells them ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; throws meap::Error for names meap does not support.
DType dtype_from_name(std::string_view name);

// bf16 is the upper half of an IEEE f32; round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace meap
