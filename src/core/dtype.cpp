#include "meap/core/dtype.hpp"

#include "meap/core/error.hpp"

namespace meap {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
  }
  return "?";
}

DType dtype_from_name(std::string_view name) {
  if (name == "F32") return DType::f32;
  if (name == "F64") return DType::f64;
  if (name == "BF16") return DType::bf16;
  if (name == "I32") return DType::i32;
  fail("unsupported tensor dtype '", name, "' (meap reads F32, F64, BF16 and I32)");
}

}  // namespace meap
