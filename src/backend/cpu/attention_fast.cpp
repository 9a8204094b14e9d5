// Causal grouped-query attention, fast f32 path: query rows in blocks of kAttentionBlock,
// each block's scores against the keys it may see computed by one BLAS GEMM into a
// (block, T) strip (never a T x T matrix), softmax in vectorised passes, then one GEMM
// for the outputs. The backward recomputes the strip's probabilities from the saved lse
// and runs five GEMMs per block (S, dP, dQ, dK, dV). Same contract as attention.cpp.
// One task per (batch, kv head), writing disjoint outputs in a fixed order.
// Packed rows (segments, document ids non-decreasing along a row): a block's strip starts at
// the first key of its first query's document instead of key 0 -- keys before it belong to
// earlier documents, which no query of the block reads -- and each row keeps only the keys
// of its own document, from its document's start to itself.
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

// start (T) of one row: the first token of each token's document (0 without segments).
// Documents are contiguous runs of equal ids. Per thread, reused like the strip.
const int64_t* document_starts(const int32_t* seg, int64_t t) {
  thread_local std::vector<int64_t> start;
  if (static_cast<int64_t>(start.size()) < t) start.resize(t);
  for (int64_t i = 0; i < t; ++i)
    start[i] = seg && i > 0 && seg[i] == seg[i - 1] ? start[i - 1] : seg ? i : 0;
  return start.data();
}

// The strip of a query block: queries q0 .. q0+rows-1 against keys k_lo .. k_lo+n_k-1.
// Row r keeps keys [start[q0 + r], q0 + r]: columns [lo(r), lim(r)).
struct Strip {
  int64_t rows, n_k, q0, k_lo;
  const int64_t* start;  // document starts of the whole row (T)
  int64_t lo(int64_t r) const { return start[q0 + r] - k_lo; }
  int64_t lim(int64_t r) const { return q0 + r + 1 - k_lo; }
};

// s (rows, n_k): scaled scores of the strip, turned in place into probabilities (0 outside
// each row's kept columns); lse (rows) saved.
MEAP_SIMD_CLONES
void softmax_rows(float* s, float* lse, const Strip& st) {
  for (int64_t r = 0; r < st.rows; ++r) {
    float* row = s + r * st.n_k;
    const int64_t lo = st.lo(r), lim = st.lim(r);
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = lo; j < lim; ++j) m = std::max(m, row[j]);
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = lo; j < lim; ++j) {
      const float e = exp_approx(row[j] - m);
      row[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = lo; j < lim; ++j) row[j] *= inv;
    std::fill(row, row + lo, 0.0f);
    std::fill(row + lim, row + st.n_k, 0.0f);
    lse[r] = m + std::log(sum);
  }
}

// p (rows, n_k) scaled scores -> probabilities exp(s - lse) (0 outside the kept columns);
// dp (rows, n_k) = dO V^T -> dS = p * (dp - delta) * scale.
MEAP_SIMD_CLONES
void probabilities_and_ds(float* p, float* dp, const float* lse, const float* delta,
                          const Strip& st, float scale) {
  for (int64_t r = 0; r < st.rows; ++r) {
    float* pr = p + r * st.n_k;
    float* dr = dp + r * st.n_k;
    const int64_t lo = st.lo(r), lim = st.lim(r);
    const float l = lse[r], dl = delta[r];
#pragma omp simd
    for (int64_t j = lo; j < lim; ++j) {
      const float pj = exp_approx(pr[j] - l);
      pr[j] = pj;
      dr[j] = pj * (dr[j] - dl) * scale;
    }
    std::fill(pr, pr + lo, 0.0f);
    std::fill(dr, dr + lo, 0.0f);
    std::fill(pr + lim, pr + st.n_k, 0.0f);
    std::fill(dr + lim, dr + st.n_k, 0.0f);
  }
}

// Copies rows (rows, D) strided by ld into a contiguous (rows, D) block, or back.
void gather_rows(float* dst, const float* src, int64_t rows, int64_t d, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ld, src + r * ld + d, dst + r * d);
}
void scatter_rows(float* dst, const float* src, int64_t rows, int64_t d, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * d, src + r * d + d, dst + r * ld);
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

// The heads of qkv are interleaved: consecutive rows of one head are (Hq + 2Hkv) D floats
// apart, a power-of-two stride for common shapes that maps every row to the same cache
// sets. Each task therefore first gathers its head's rows into contiguous (T, D) blocks and
// runs every GEMM on those.
void attention_forward(float* out, float* lse, const float* qkv, const int32_t* segments,
                       int64_t b, int64_t t, int64_t hq, int64_t hkv, int64_t d) {
  single_threaded_blas();
  const int64_t ht = hq + 2 * hkv, group = hq / hkv, ldq = ht * d, ldo = hq * d;
  const int64_t blk = kAttentionBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Tasks (batch, kv head) write disjoint rows of out and lse.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t g = 0; g < hkv; ++g) {
      // Scratch: K, V (T, D); Q and O blocks (blk, D); scores (blk, T).
      float* k = thread_scratch(static_cast<size_t>(2 * t * d + 2 * blk * d + blk * t));
      float* v = k + t * d;
      float* q = v + t * d;
      float* o = q + blk * d;
      float* s = o + blk * d;
      gather_rows(k, qkv + (bi * t * ht + hq + g) * d, t, d, ldq);
      gather_rows(v, qkv + (bi * t * ht + hq + hkv + g) * d, t, d, ldq);
      const int64_t* start = document_starts(segments ? segments + bi * t : nullptr, t);
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t q0 = 0; q0 < t; q0 += blk) {
          const int64_t rows = std::min(blk, t - q0), k_lo = start[q0];
          const Strip st{rows, q0 + rows - k_lo, q0, k_lo, start};
          gather_rows(q, qkv + ((bi * t + q0) * ht + h) * d, rows, d, ldq);
          // S (rows, n_k) = scale * Q K[k_lo:]^T
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, st.n_k, d, scale, q, d,
                      k + k_lo * d, d, 0.0f, s, st.n_k);
          softmax_rows(s, lse + (bi * hq + h) * t + q0, st);
          // O (rows, D) = P V[k_lo:]
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, st.n_k, 1.0f, s,
                      st.n_k, v + k_lo * d, d, 0.0f, o, d);
          scatter_rows(out + ((bi * t + q0) * hq + h) * d, o, rows, d, ldo);
        }
    }
}

// dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)) * scale, dQ = dS K,
// dK = dS^T Q. One task per (batch, kv head) owns that head's dK, dV and its query heads'
// dQ, and adds the blocks up in a fixed order.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, const int32_t* segments, int64_t b, int64_t t,
                        int64_t hq, int64_t hkv, int64_t d) {
  single_threaded_blas();
  const int64_t ht = hq + 2 * hkv, group = hq / hkv, ldq = ht * d, ldo = hq * d;
  const int64_t blk = kAttentionBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t g = 0; g < hkv; ++g) {
      // Scratch: K, V, dK, dV (T, D); Q, dO, dQ blocks (blk, D); P, dP (blk, T); delta (blk).
      float* k = thread_scratch(
          static_cast<size_t>(4 * t * d + 3 * blk * d + 2 * blk * t + blk));
      float* v = k + t * d;
      float* dk = v + t * d;
      float* dv = dk + t * d;
      float* q = dv + t * d;
      float* go = q + blk * d;
      float* dq = go + blk * d;
      float* p = dq + blk * d;
      float* dp = p + blk * t;
      float* delta = dp + blk * t;
      float* dk_out = dqkv + (bi * t * ht + hq + g) * d;
      float* dv_out = dqkv + (bi * t * ht + hq + hkv + g) * d;
      gather_rows(k, qkv + (bi * t * ht + hq + g) * d, t, d, ldq);
      gather_rows(v, qkv + (bi * t * ht + hq + hkv + g) * d, t, d, ldq);
      std::fill(dk, dk + 2 * t * d, 0.0f);  // dK and dV
      const int64_t* start = document_starts(segments ? segments + bi * t : nullptr, t);
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t q0 = 0; q0 < t; q0 += blk) {
          const int64_t rows = std::min(blk, t - q0), k_lo = start[q0];
          const Strip st{rows, q0 + rows - k_lo, q0, k_lo, start};
          const int64_t n_k = st.n_k;
          gather_rows(q, qkv + ((bi * t + q0) * ht + h) * d, rows, d, ldq);
          gather_rows(go, dout + ((bi * t + q0) * hq + h) * d, rows, d, ldo);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_k, d, scale, q, d,
                      k + k_lo * d, d, 0.0f, p, n_k);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_k, d, 1.0f, go, d,
                      v + k_lo * d, d, 0.0f, dp, n_k);
          row_dots(delta, dout + ((bi * t + q0) * hq + h) * d,
                   out + ((bi * t + q0) * hq + h) * d, rows, d, ldo);
          probabilities_and_ds(p, dp, lse + (bi * hq + h) * t + q0, delta, st, scale);
          // dQ (rows, D) = dS K[k_lo:];  dK[k_lo:] (n_k, D) += dS^T Q;  dV[k_lo:] += P^T dO
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n_k, 1.0f, dp, n_k,
                      k + k_lo * d, d, 0.0f, dq, d);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_k, d, rows, 1.0f, dp, n_k, q, d,
                      1.0f, dk + k_lo * d, d);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_k, d, rows, 1.0f, p, n_k, go, d,
                      1.0f, dv + k_lo * d, d);
          scatter_rows(dqkv + ((bi * t + q0) * ht + h) * d, dq, rows, d, ldq);
        }
      scatter_rows(dk_out, dk, t, d, ldq);
      scatter_rows(dv_out, dv, t, d, ldq);
    }
}

}  // namespace meap::cpu::fast
