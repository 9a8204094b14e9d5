// Finite-difference helpers for the gradient-check tests (double precision).
#pragma once

#include <cmath>
#include <functional>
#include <vector>

#include "meap/core/rng.hpp"
#include "meap/core/tensor.hpp"

namespace meap::testing {

using Vec = std::vector<double>;

inline Tensor f64(Vec& v, std::initializer_list<int64_t> dims) {
  Tensor t(v.data(), DType::f64, Device::cpu, dims);
  MEAP_CHECK(t.numel() == static_cast<int64_t>(v.size()), "test tensor size");
  return t;
}

inline Vec random_vec(size_t n, uint64_t stream, double scale = 1.0, uint64_t seed = 7) {
  Vec v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * philox_normal(seed, stream, i);
  return v;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences of loss() with respect to x[begin, end): (L(x+h) - L(x-h)) / 2h.
inline Vec finite_difference(double* x, size_t n, const std::function<double()>& loss,
                             double h = 1e-5) {
  Vec fd(n);
  for (size_t i = 0; i < n; ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    fd[i] = (plus - minus) / (2 * h);
  }
  return fd;
}

// ||a - b|| / ||b||, the normwise relative error used throughout the tests.
inline double relative_error(const double* a, const double* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-300);
}
inline double relative_error(const Vec& a, const Vec& b) {
  MEAP_CHECK(a.size() == b.size(), "size mismatch");
  return relative_error(a.data(), b.data(), a.size());
}

}  // namespace meap::testing
