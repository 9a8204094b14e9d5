// Token embedding lookup and its scatter-add backward.
#include <cstring>

#include "cpu_kernels.hpp"

namespace meap::cpu {

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * c, table + static_cast<int64_t>(tokens[i]) * c, sizeof(T) * c);
}

// Parallel over embedding columns: each thread owns a slice of every row, and tokens are
// visited in order, so the sum order is fixed.
template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t v,
                        int64_t c) {
  (void)v;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < c; ++j)
    for (int64_t i = 0; i < n; ++i) dtable[static_cast<int64_t>(tokens[i]) * c + j] += dout[i * c + j];
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                        int64_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t,
                                         int64_t, int64_t);

}  // namespace meap::cpu
