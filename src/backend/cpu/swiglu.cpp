// SwiGLU core of the MLP: out = silu(gate) * up, with gate_up (N, 2F) = [gate | up].
#include <cmath>

#include "cpu_kernels.hpp"

namespace meap::cpu {

template <class T>
void swiglu_forward(T* out, const T* gate_up, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* g = gate_up + i * 2 * f;
    const T* u = g + f;
    for (int64_t j = 0; j < f; ++j) {
      const T sig = T(1) / (T(1) + std::exp(-g[j]));
      out[i * f + j] = g[j] * sig * u[j];
    }
  }
}

// d silu(g) / dg = sig(g) * (1 + g * (1 - sig(g))).
template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* g = gate_up + i * 2 * f;
    const T* u = g + f;
    T* dg = dgate_up + i * 2 * f;
    T* du = dg + f;
    for (int64_t j = 0; j < f; ++j) {
      const T sig = T(1) / (T(1) + std::exp(-g[j]));
      const T go = dout[i * f + j];
      du[j] = go * g[j] * sig;
      dg[j] = go * u[j] * sig * (T(1) + g[j] * (T(1) - sig));
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t);
template void swiglu_forward<double>(double*, const double*, int64_t, int64_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void swiglu_backward<double>(double*, const double*, const double*, int64_t, int64_t);

}  // namespace meap::cpu
