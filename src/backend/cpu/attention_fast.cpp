// Causal grouped-query attention, fast f32 path: query rows in blocks of kAttentionBlock,
// each block's scores against the keys it may see computed by one BLAS GEMM into a
// (block, T) strip (never a T x T matrix), softmax in vectorised passes, then one GEMM
// for the outputs. The backward recomputes the strip's probabilities from the saved lse
// and runs five GEMMs per block (S, dP, dQ, dK, dV). Same contract as attention.cpp.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "fast_kernels.hpp"
#include "fast_math.hpp"

namespace meap::cpu::fast {

namespace {

// OpenBLAS's own threads would fight our OpenMP threads for the cores; each GEMM here
// runs inside one OpenMP task.
void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// One strip per thread, grown on the first step to the longest sequence, then reused.
float* thread_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// s (rows, n_k): scaled scores of queries q0 .. q0+rows-1 against keys 0 .. n_k-1, turned
// in place into probabilities (0 past each row's causal limit); lse (rows) saved.
MEAP_SIMD_CLONES
void softmax_rows(float* s, float* lse, int64_t rows, int64_t n_k, int64_t q0) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * n_k;
    const int64_t lim = q0 + r + 1;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < lim; ++j) m = std::max(m, row[j]);
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < lim; ++j) {
      const float e = exp_approx(row[j] - m);
      row[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < lim; ++j) row[j] *= inv;
    std::fill(row + lim, row + n_k, 0.0f);
    lse[r] = m + std::log(sum);
  }
}

// p (rows, n_k) scaled scores -> probabilities exp(s - lse) (0 past the causal limit);
// dp (rows, n_k) = dO V^T -> dS = p * (dp - delta) * scale.
MEAP_SIMD_CLONES
void probabilities_and_ds(float* p, float* dp, const float* lse, const float* delta,
                          int64_t rows, int64_t n_k, int64_t q0, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* pr = p + r * n_k;
    float* dr = dp + r * n_k;
    const int64_t lim = q0 + r + 1;
    const float l = lse[r], dl = delta[r];
#pragma omp simd
    for (int64_t j = 0; j < lim; ++j) {
      const float pj = exp_approx(pr[j] - l);
      pr[j] = pj;
      dr[j] = pj * (dr[j] - dl) * scale;
    }
    std::fill(pr + lim, pr + n_k, 0.0f);
    std::fill(dr + lim, dr + n_k, 0.0f);
  }
}

// delta (rows) = rowsum(dO * O), rows strided by ld.
MEAP_SIMD_CLONES
void row_dots(float* delta, const float* a, const float* b, int64_t rows, int64_t d,
              int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += a[r * ld + j] * b[r * ld + j];
    delta[r] = s;
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t b, int64_t t,
                       int64_t hq, int64_t hkv, int64_t d) {
  single_threaded_blas();
  const int64_t ht = hq + 2 * hkv, group = hq / hkv, ldq = ht * d, ldo = hq * d;
  const int64_t blocks = (t + kAttentionBlock - 1) / kAttentionBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Tasks (batch, head, query block) write disjoint rows of out and lse; the longest
  // blocks (last in the sequence) are handed out first.
#pragma omp parallel for collapse(3) schedule(dynamic)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t blk_rev = 0; blk_rev < blocks; ++blk_rev) {
        const int64_t q0 = (blocks - 1 - blk_rev) * kAttentionBlock;
        const int64_t rows = std::min(kAttentionBlock, t - q0), n_k = q0 + rows;
        float* s = thread_scratch(static_cast<size_t>(kAttentionBlock * t));
        const float* q = qkv + ((bi * t + q0) * ht + h) * d;
        const float* k = qkv + (bi * t * ht + hq + h / group) * d;
        const float* v = qkv + (bi * t * ht + hq + hkv + h / group) * d;
        // S (rows, n_k) = scale * Q K^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_k, d, scale, q, ldq, k,
                    ldq, 0.0f, s, n_k);
        softmax_rows(s, lse + (bi * hq + h) * t + q0, rows, n_k, q0);
        // O (rows, D) = P V
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n_k, 1.0f, s, n_k, v,
                    ldq, 0.0f, out + ((bi * t + q0) * hq + h) * d, ldo);
      }
}

// dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)) * scale, dQ = dS K,
// dK = dS^T Q. One task per (batch, kv head) owns that head's dK, dV and its query heads'
// dQ, and adds the blocks up in a fixed order.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t b, int64_t t, int64_t hq, int64_t hkv,
                        int64_t d) {
  single_threaded_blas();
  const int64_t ht = hq + 2 * hkv, group = hq / hkv, ldq = ht * d, ldo = hq * d;
  const int64_t blocks = (t + kAttentionBlock - 1) / kAttentionBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t g = 0; g < hkv; ++g) {
      const int64_t kh = hq + g, vh = hq + hkv + g;
      float* p = thread_scratch(static_cast<size_t>(2 * kAttentionBlock * t + kAttentionBlock));
      float* dp = p + kAttentionBlock * t;
      float* delta = dp + kAttentionBlock * t;
      const float* k = qkv + (bi * t * ht + kh) * d;
      const float* v = qkv + (bi * t * ht + vh) * d;
      float* dk = dqkv + (bi * t * ht + kh) * d;
      float* dv = dqkv + (bi * t * ht + vh) * d;
      for (int64_t ti = 0; ti < t; ++ti) {
        std::fill(dk + ti * ldq, dk + ti * ldq + d, 0.0f);
        std::fill(dv + ti * ldq, dv + ti * ldq + d, 0.0f);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t q0 = blk * kAttentionBlock;
          const int64_t rows = std::min(kAttentionBlock, t - q0), n_k = q0 + rows;
          const float* q = qkv + ((bi * t + q0) * ht + h) * d;
          const float* go = dout + ((bi * t + q0) * hq + h) * d;
          const float* o = out + ((bi * t + q0) * hq + h) * d;
          float* dq = dqkv + ((bi * t + q0) * ht + h) * d;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_k, d, scale, q, ldq, k,
                      ldq, 0.0f, p, n_k);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_k, d, 1.0f, go, ldo, v,
                      ldq, 0.0f, dp, n_k);
          row_dots(delta, go, o, rows, d, ldo);
          probabilities_and_ds(p, dp, lse + (bi * hq + h) * t + q0, delta, rows, n_k, q0,
                               scale);
          // dQ (rows, D) = dS K;  dK (n_k, D) += dS^T Q;  dV (n_k, D) += P^T dO
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n_k, 1.0f, dp, n_k,
                      k, ldq, 0.0f, dq, ldq);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_k, d, rows, 1.0f, dp, n_k, q,
                      ldq, 1.0f, dk, ldq);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_k, d, rows, 1.0f, p, n_k, go,
                      ldo, 1.0f, dv, ldq);
        }
    }
}

}  // namespace meap::cpu::fast
