// Causal grouped-query attention, the exact reference: scores, softmax and outputs row by
// row, in the scalar type T (accumulations in T as well, so the double instance is exact
// enough for finite-difference checks).
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_kernels.hpp"

namespace meap::cpu {

namespace {
template <class T>
T dot(const T* a, const T* b, int64_t d) {
  T s = 0;
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

// One scratch row per thread, grown once to the longest sequence seen.
template <class T>
T* scratch_row(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}
}  // namespace

// Whether query ti of row bi reads key s <= ti: same document (segments null: always).
inline bool same_document(const int32_t* segments, int64_t bi, int64_t t, int64_t ti, int64_t s) {
  return !segments || segments[bi * t + s] == segments[bi * t + ti];
}

// qkv (B, T, Hq + 2Hkv, D) -> out (B, T, Hq, D), lse (B, Hq, T). Keys of other documents
// get probability 0 (skipped); every query reads at least itself.
template <class T>
void attention_forward(T* out, T* lse, const T* qkv, const int32_t* segments, int64_t b,
                       int64_t t, int64_t hq, int64_t hkv, int64_t d) {
  const int64_t h_total = hq + 2 * hkv, group = hq / hkv;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < hq; ++h) {
      T* p = scratch_row<T>(t);
      const int64_t kh = hq + h / group, vh = hq + hkv + h / group;
      for (int64_t ti = 0; ti < t; ++ti) {
        const T* q = qkv + ((bi * t + ti) * h_total + h) * d;
        T m = -INFINITY;
        for (int64_t s = 0; s <= ti; ++s) {
          if (!same_document(segments, bi, t, ti, s)) continue;
          p[s] = dot(q, qkv + ((bi * t + s) * h_total + kh) * d, d) * scale;
          m = std::max(m, p[s]);
        }
        T sum = 0;
        for (int64_t s = 0; s <= ti; ++s) {
          p[s] = same_document(segments, bi, t, ti, s) ? std::exp(p[s] - m) : T(0);
          sum += p[s];
        }
        lse[(bi * hq + h) * t + ti] = m + std::log(sum);
        T* o = out + ((bi * t + ti) * hq + h) * d;
        std::fill(o, o + d, T(0));
        for (int64_t s = 0; s <= ti; ++s) {
          const T* v = qkv + ((bi * t + s) * h_total + vh) * d;
          const T w = p[s] / sum;
          for (int64_t j = 0; j < d; ++j) o[j] += w * v[j];
        }
      }
    }
}

// With P = softmax(S), S = scale * Q K^T (causal):
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = scale dS K,
//   dK = scale dS^T Q.
// One thread per (batch, kv head) owns that head's dK, dV and its query heads' dQ.
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const int32_t* segments, int64_t b, int64_t t, int64_t hq, int64_t hkv,
                        int64_t d) {
  const int64_t h_total = hq + 2 * hkv, group = hq / hkv;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t g = 0; g < hkv; ++g) {
      const int64_t kh = hq + g, vh = hq + hkv + g;
      for (int64_t ti = 0; ti < t; ++ti) {
        T* row = dqkv + (bi * t + ti) * h_total * d;
        std::fill(row + kh * d, row + (kh + 1) * d, T(0));
        std::fill(row + vh * d, row + (vh + 1) * d, T(0));
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t ti = 0; ti < t; ++ti) {
          const T* q = qkv + ((bi * t + ti) * h_total + h) * d;
          const T* go = dout + ((bi * t + ti) * hq + h) * d;
          const T* o = out + ((bi * t + ti) * hq + h) * d;
          T* dq = dqkv + ((bi * t + ti) * h_total + h) * d;
          std::fill(dq, dq + d, T(0));
          const T l = lse[(bi * hq + h) * t + ti];
          const T delta = dot(go, o, d);
          for (int64_t s = 0; s <= ti; ++s) {
            if (!same_document(segments, bi, t, ti, s)) continue;
            const T* k = qkv + ((bi * t + s) * h_total + kh) * d;
            const T* v = qkv + ((bi * t + s) * h_total + vh) * d;
            T* dk = dqkv + ((bi * t + s) * h_total + kh) * d;
            T* dv = dqkv + ((bi * t + s) * h_total + vh) * d;
            const T p = std::exp(dot(q, k, d) * scale - l);
            const T ds = p * (dot(go, v, d) - delta) * scale;
            for (int64_t j = 0; j < d; ++j) {
              dq[j] += ds * k[j];
              dk[j] += ds * q[j];
              dv[j] += p * go[j];
            }
          }
        }
    }
}

template void attention_forward<float>(float*, float*, const float*, const int32_t*, int64_t,
                                       int64_t, int64_t, int64_t, int64_t);
template void attention_forward<double>(double*, double*, const double*, const int32_t*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, const int32_t*, int64_t, int64_t, int64_t,
                                        int64_t, int64_t);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, const int32_t*, int64_t, int64_t, int64_t,
                                         int64_t, int64_t);

}  // namespace meap::cpu
