// Elementwise residual add.
#include "cpu_kernels.hpp"

namespace meap::cpu {

template <class T>
void add_forward(T* out, const T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);

}  // namespace meap::cpu
