// Linear layers for the fast f32 path: the same BLAS GEMMs as matmul.cpp, cut into fixed
// chunks of output rows that the OpenMP threads take dynamically. On cores shared with
// other work a thread that loses its core no longer holds the other at a barrier with
// half the GEMM left: the other thread takes the remaining chunks. The chunk size does not
// depend on the thread count, so neither do the results.
#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "fast_kernels.hpp"

namespace meap::cpu::fast {

namespace {

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// Rows per chunk: a multiple of the GEMM kernels' tile height, large enough that the
// operand each chunk packs again (the weight, or x for dw) costs little against its work.
constexpr int64_t kChunkRows = 128;

// Calls fn(begin, end) over [0, rows) in chunks of kChunkRows, dynamically over threads.
template <class Fn>
void for_row_chunks(int64_t rows, Fn&& fn) {
  single_threaded_blas();
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
#pragma omp parallel for schedule(dynamic) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c)
    fn(c * kChunkRows, std::min(rows, (c + 1) * kChunkRows));
}

}  // namespace

void matmul_forward(float* out, const float* x, const float* w, int64_t n, int64_t ic,
                    int64_t oc) {
  // out (N, OC) = x (N, IC) @ w (OC, IC)^T, by chunks of rows of x and out.
  for_row_chunks(n, [&](int64_t b, int64_t e) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, e - b, oc, ic, 1.0f, x + b * ic, ic,
                w, ic, 0.0f, out + b * oc, oc);
  });
}

void matmul_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                     int64_t n, int64_t ic, int64_t oc) {
  // dx (N, IC) = dout (N, OC) @ w (OC, IC), by chunks of rows of dout and dx.
  if (dx)
    for_row_chunks(n, [&](int64_t b, int64_t e) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, e - b, ic, oc, 1.0f, dout + b * oc,
                  oc, w, ic, 0.0f, dx + b * ic, ic);
    });
  // dw (OC, IC) += dout^T (OC, N) @ x (N, IC), by chunks of rows of dw (columns of dout).
  for_row_chunks(oc, [&](int64_t b, int64_t e) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, e - b, ic, n, 1.0f, dout + b, oc, x, ic,
                1.0f, dw + b * ic, ic);
  });
}

}  // namespace meap::cpu::fast
