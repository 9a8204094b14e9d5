// Linear layers through BLAS: out = x @ w^T with w (OC, IC), row-major.
// OpenBLAS runs single-threaded; we split each GEMM into disjoint output blocks over the
// OpenMP threads ourselves. Two thread pools on the same cores (OpenBLAS's and OpenMP's)
// spent about half of a training step spinning against each other.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <mutex>

#include "cpu_kernels.hpp"

namespace meap::cpu {

namespace {

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// Calls fn(begin, end) on disjoint slices of [0, rows), one per OpenMP thread, each
// slice a multiple of 16 rows so the GEMM kernels keep full tiles.
template <class Fn>
void split_rows(int64_t rows, Fn&& fn) {
  single_threaded_blas();
  const int64_t threads = std::min<int64_t>(omp_get_max_threads(), (rows + 15) / 16);
  if (threads <= 1) {
    fn(0, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t per = (rows / threads + 15) / 16 * 16;
    const int64_t begin = std::min(rows, t * per);
    const int64_t end = t == threads - 1 ? rows : std::min(rows, begin + per);
    if (end > begin) fn(begin, end);
  }
}

}  // namespace

template <class T>
void matmul_forward(T* out, const T* x, const T* w, int64_t n, int64_t ic, int64_t oc) {
  // (N, IC) @ (OC, IC)^T -> (N, OC), split over the rows of x and out.
  split_rows(n, [&](int64_t b, int64_t e) {
    gemm(CblasNoTrans, CblasTrans, e - b, oc, ic, T(1), x + b * ic, ic, w, ic, T(0),
         out + b * oc, oc);
  });
}

template <class T>
void matmul_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, int64_t n,
                     int64_t ic, int64_t oc) {
  // dx (N, IC) = dout (N, OC) @ w (OC, IC), split over the rows of dout and dx.
  if (dx)
    split_rows(n, [&](int64_t b, int64_t e) {
      gemm(CblasNoTrans, CblasNoTrans, e - b, ic, oc, T(1), dout + b * oc, oc, w, ic, T(0),
           dx + b * ic, ic);
    });
  // dw (OC, IC) += dout^T (OC, N) @ x (N, IC), split over the rows of dw (columns of dout).
  split_rows(oc, [&](int64_t b, int64_t e) {
    gemm(CblasTrans, CblasNoTrans, e - b, ic, n, T(1), dout + b, oc, x, ic, T(1), dw + b * ic,
         ic);
  });
}

template void matmul_forward<float>(float*, const float*, const float*, int64_t, int64_t,
                                    int64_t);
template void matmul_forward<double>(double*, const double*, const double*, int64_t, int64_t,
                                     int64_t);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t, int64_t, int64_t);
template void matmul_backward<double>(double*, double*, const double*, const double*,
                                      const double*, int64_t, int64_t, int64_t);

}  // namespace meap::cpu
