// Helpers of the CUDA-backend tests: device tensors that free themselves and start poisoned
// (0xff bytes: NaN in f32 and bf16), host <-> device copies with bf16 rounding, random
// inputs from Philox, and the normwise relative error. Only for builds with CUDA.
#pragma once

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "backend/cuda/cuda_backend.hpp"
#include "cuda_check.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

namespace meap::cuda_test {

// The two storage precisions of the CUDA ops, and the tolerance each is held to.
enum class Prec { f32, bf16 };
inline DType storage(Prec p) { return p == Prec::f32 ? DType::f32 : DType::bf16; }
inline const char* prec_name(Prec p) { return p == Prec::f32 ? "f32" : "bf16"; }
inline double tolerance(Prec p) { return p == Prec::f32 ? 1e-5 : 1e-2; }

// ||a - b|| / ||b|| in double.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  MEAP_CHECK(a.size() == b.size(), "rel_error of vectors of different sizes");
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    diff += d * d;
    ref += static_cast<double>(b[i]) * b[i];
  }
  if (std::isnan(diff)) return INFINITY;
  return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-300);
}

// n standard normals (times scale) of Philox stream `stream`.
inline std::vector<float> randn(size_t n, uint64_t stream, double scale = 1.0,
                                uint64_t seed = 2024) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(scale * philox_normal(seed, stream, i));
  return v;
}

// The values a bf16 tensor would hold (identity for f32): CPU references of the bf16 path
// run in f32 on these.
inline std::vector<float> rounded(std::vector<float> v, Prec p) {
  if (p == Prec::bf16)
    for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

inline Tensor host_f32(std::vector<float>& v, std::initializer_list<int64_t> dims) {
  Tensor t(v.data(), DType::f32, Device::cpu, dims);
  MEAP_CHECK(t.numel() == static_cast<int64_t>(v.size()), "host tensor size");
  return t;
}

// A device tensor owned by the test, poisoned with 0xff bytes on creation.
class DevTensor {
 public:
  DevTensor(Backend& be, DType dt, std::initializer_list<int64_t> dims) : be_(be) {
    Tensor shape(nullptr, dt, Device::cuda, dims);
    t_ = Tensor(be_.allocate(shape.nbytes()), dt, Device::cuda, dims);
    poison();
  }
  ~DevTensor() { be_.deallocate(t_.data); }
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;

  const Tensor& t() const { return t_; }
  operator const Tensor&() const { return t_; }

  void poison() {
    be_.synchronize();
    MEAP_CUDA_CHECK(cudaMemset(t_.data, 0xff, t_.nbytes()));
    MEAP_CUDA_CHECK(cudaDeviceSynchronize());
  }
  // Uploads float values, rounded to bf16 when the tensor is bf16.
  void set(const std::vector<float>& v) {
    MEAP_CHECK(static_cast<int64_t>(v.size()) == t_.numel(), "upload size");
    if (t_.dtype == DType::f32) {
      be_.copy_from_host(t_, v.data());
    } else {
      MEAP_CHECK(t_.dtype == DType::bf16, "set() takes f32 or bf16 tensors");
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
      be_.copy_from_host(t_, h.data());
    }
  }
  void set_i32(const std::vector<int32_t>& v) {
    MEAP_CHECK(t_.dtype == DType::i32 && static_cast<int64_t>(v.size()) == t_.numel(),
               "upload of token ids");
    be_.copy_from_host(t_, v.data());
  }
  // Downloads as float (bf16 widened exactly); the host copy is poisoned first.
  std::vector<float> get() const {
    std::vector<float> v(t_.numel());
    if (t_.dtype == DType::f32) {
      std::memset(v.data(), 0xff, v.size() * 4);
      be_.copy_to_host(v.data(), t_);
    } else {
      MEAP_CHECK(t_.dtype == DType::bf16, "get() takes f32 or bf16 tensors");
      std::vector<uint16_t> h(v.size(), 0xffff);
      be_.copy_to_host(h.data(), t_);
      for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_to_f32(h[i]);
    }
    return v;
  }
  // The raw bytes, for bit-identity checks.
  std::vector<unsigned char> bytes() const {
    std::vector<unsigned char> b(t_.nbytes(), 0xab);
    be_.copy_to_host(b.data(), t_);
    return b;
  }

 private:
  Backend& be_;
  Tensor t_;
};

}  // namespace meap::cuda_test
