// Tensor: a non-owning, contiguous, row-major view of up to 4 dimensions.
// Memory is owned by an Arena (or a flat parameter buffer); views are cheap to copy.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "meap/core/dtype.hpp"
#include "meap/core/error.hpp"

namespace meap {

enum class Device : uint8_t { cpu, cuda };

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int ndim = 0;
  std::array<int64_t, 4> shape{};

  Tensor() = default;
  Tensor(void* data_, DType dtype_, Device device_, std::initializer_list<int64_t> dims);

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // dim(-1) is the last dimension.
  int64_t dim(int i) const;
  bool empty() const { return data == nullptr; }

  // Same memory, another shape with the same element count.
  Tensor reshaped(std::initializer_list<int64_t> dims) const;
  // Rows [begin, end) of the first dimension.
  Tensor rows(int64_t begin, int64_t end) const;

  template <class T>
  T* as() const;

  std::string shape_string() const;
};

template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::bf16; };

template <class T>
T* Tensor::as() const {
  MEAP_CHECK(dtype == dtype_of<T>::value, "tensor dtype is ", dtype_name(dtype));
  return static_cast<T*>(data);
}

}  // namespace meap
