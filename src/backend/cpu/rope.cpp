// Rotary position embedding, Hugging Face convention: for j < D/2 the pair
// (x[j], x[j + D/2]) at position t is rotated by angle t * theta^(-2j/D).
#include "cpu_kernels.hpp"

namespace meap::cpu {

// x (B, T, H_total, D); heads [0, h_rot) rotated in place; cos, sin (P, D/2); token
// (b, t) at position positions[b * T + t] (t when positions is null).
// inverse = true rotates by -angle: the backward of the rotation is its transpose.
template <class T>
void rope_apply(T* x, const T* cos, const T* sin, const int32_t* positions, int64_t b, int64_t t,
                int64_t h_total, int64_t h_rot, int64_t d, bool inverse) {
  const int64_t half = d / 2;
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t h = 0; h < h_rot; ++h) {
        T* v = x + ((bi * t + ti) * h_total + h) * d;
        const int64_t pos = positions ? positions[bi * t + ti] : ti;
        const T* c = cos + pos * half;
        const T* s = sin + pos * half;
        for (int64_t j = 0; j < half; ++j) {
          const T x1 = v[j], x2 = v[j + half];
          const T sj = sign * s[j];
          v[j] = x1 * c[j] - x2 * sj;
          v[j + half] = x2 * c[j] + x1 * sj;
        }
      }
}

template void rope_apply<float>(float*, const float*, const float*, const int32_t*, int64_t,
                                int64_t, int64_t, int64_t, int64_t, bool);
template void rope_apply<double>(double*, const double*, const double*, const int32_t*, int64_t,
                                 int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace meap::cpu
