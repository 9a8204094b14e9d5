// RMSNorm: y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), per row of C.
#include <cmath>

#include "cpu_kernels.hpp"

namespace meap::cpu {

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, int64_t n, int64_t c,
                     double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    double ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const T r = static_cast<T>(1.0 / std::sqrt(ss / c + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < c; ++j) out[i * c + j] = xi[j] * r * weight[j];
  }
}

// With xhat = x * rstd and g = dout * w:
//   dx = rstd * (g - xhat * mean(g * xhat)),  dw = sum_rows dout * xhat.
// dweight is reduced row by row in a fixed order after the parallel dx pass.
template <class T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight,
                      const T* rstd, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    const T* gi = dout + i * c;
    const T r = rstd[i];
    double dot = 0;
    for (int64_t j = 0; j < c; ++j) dot += static_cast<double>(gi[j]) * weight[j] * xi[j] * r;
    const T mean_dot = static_cast<T>(dot / c);
    for (int64_t j = 0; j < c; ++j)
      dx[i * c + j] += r * (gi[j] * weight[j] - xi[j] * r * mean_dot);
  }
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < c; ++j) {
    T acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += dout[i * c + j] * x[i * c + j] * rstd[i];
    dweight[j] += acc;
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t,
                                     int64_t, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t,
                                      int64_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int64_t, int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, int64_t, int64_t);

}  // namespace meap::cpu
