// Fused softmax + cross-entropy over the vocabulary with per-token loss weights. The
// gradient is written in the same pass (possibly over the logits themselves), so the
// probabilities are never stored.
#include <algorithm>
#include <cmath>

#include "cpu_kernels.hpp"

namespace meap::cpu {

template <class T>
void cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits,
                                    const int32_t* targets, const float* weights, int64_t n,
                                    int64_t v, double grad_scale) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* z = logits + i * v;
    T* dz = dlogits + i * v;
    if (weights[i] == 0.0f) {  // ignored position: its target need not even be valid
      losses[i] = T(0);
      std::fill(dz, dz + v, T(0));
      continue;
    }
    const T m = *std::max_element(z, z + v);
    T sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += std::exp(z[j] - m);
    const T lse = m + std::log(sum);
    const int32_t y = targets[i];
    losses[i] = lse - z[y];  // read before dz may overwrite z
    const T w = static_cast<T>(weights[i] * grad_scale);
    for (int64_t j = 0; j < v; ++j) dz[j] = std::exp(z[j] - lse) * w;
    dz[y] -= w;
  }
}

template void cross_entropy_forward_backward<float>(float*, float*, const float*,
                                                    const int32_t*, const float*, int64_t,
                                                    int64_t, double);
template void cross_entropy_forward_backward<double>(double*, double*, const double*,
                                                     const int32_t*, const float*, int64_t,
                                                     int64_t, double);

}  // namespace meap::cpu
