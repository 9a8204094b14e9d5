// Optimizer kernels: global-norm pieces and the AdamW update.
#include <cmath>
#include <vector>

#include <algorithm>

#include "cpu_kernels.hpp"

namespace meap::cpu {

// Fixed blocks summed in block order: the result does not depend on the thread count.
template <class T>
double sum_squares(const T* x, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    partial[b] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

template <class T>
void scale(T* x, int64_t n, double factor) {
  const T f = static_cast<T>(factor);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= f;
}

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step) {
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T lr_t = static_cast<T>(lr), wd = static_cast<T>(weight_decay), eps_t = static_cast<T>(eps);
  const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(beta1, static_cast<double>(step))));
  const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(beta2, static_cast<double>(step))));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    const T update = (m[i] * c1) / (std::sqrt(v[i] * c2) + eps_t);
    param[i] -= lr_t * (update + wd * param[i]);
  }
}

template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);
template void scale<float>(float*, int64_t, double);
template void scale<double>(double*, int64_t, double);
template void adamw_update<float>(float*, const float*, float*, float*, int64_t, double, double,
                                  double, double, double, int64_t);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t, double,
                                   double, double, double, double, int64_t);

}  // namespace meap::cpu
