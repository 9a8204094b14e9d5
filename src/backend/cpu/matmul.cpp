// Linear layers through BLAS: out = x @ w^T with w (OC, IC), row-major.
#include <cblas.h>

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
}  // namespace

template <class T>
void matmul_forward(T* out, const T* x, const T* w, int64_t n, int64_t ic, int64_t oc) {
  // (N, IC) @ (OC, IC)^T -> (N, OC)
  gemm(CblasNoTrans, CblasTrans, n, oc, ic, T(1), x, ic, w, ic, T(0), out, oc);
}

template <class T>
void matmul_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, int64_t n,
                     int64_t ic, int64_t oc) {
  // dx (N, IC) = dout (N, OC) @ w (OC, IC)
  if (dx) gemm(CblasNoTrans, CblasNoTrans, n, ic, oc, T(1), dout, oc, w, ic, T(0), dx, ic);
  // dw (OC, IC) += dout^T (OC, N) @ x (N, IC)
  gemm(CblasTrans, CblasNoTrans, oc, ic, n, T(1), dout, oc, x, ic, T(1), dw, ic);
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
