// The flash-attention forward kernel (causal, grouped-query, bf16 in, fp32 accumulation): one
// CTA per (query tile of 64 rows, query head, batch); 4 warps, each owning 16 query rows. The
// CTA walks the key tiles 0 .. its diagonal with an online softmax, so the T x T scores never
// exist. With document segments (packed rows) it starts at the key tile holding the start of
// its first row's document instead of 0. Launched by attention_forward.cu; tiling and masking
// rules: docs/kernels.md; fragment layouts: attention_tiles.cuh.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "attention_tiles.cuh"
#include "segments.cuh"

namespace meap::cuda::attn {

constexpr int kFwdRows = 64;  // query rows per CTA (16 per warp)
constexpr int kFwdKeys = 64;  // keys per tile

// Dynamic shared memory: Q (kFwdRows rows), then K and V, two buffers each, all padded; then
// the key tiles' document ids (two buffers of kFwdKeys int32, used with segments only).
template <int D>
constexpr size_t forward_smem_bytes() {
  return static_cast<size_t>(kFwdRows + 4 * kFwdKeys) * (D + kPad) * sizeof(__nv_bfloat16) +
         2 * kFwdKeys * sizeof(int32_t);
}

// qkv (B, T, Hq + 2 Hkv, D) -> out (B, T, Hq, D), lse (B, Hq, T); scale_log2 = log2(e)/sqrt(D).
// segments (B, T) document ids (non-decreasing per row) or null: one document per row.
// grid (ceil(T / kFwdRows), Hq, B), kThreads threads; the heaviest (last) query tiles go first.
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(__nv_bfloat16* __restrict__ out, float* __restrict__ lse,
                         const __nv_bfloat16* __restrict__ qkv,
                         const int32_t* __restrict__ segments, int T, int Hq, int Hkv,
                         float scale_log2) {
  using bf16 = __nv_bfloat16;
  constexpr int kBr = kFwdRows, kBc = kFwdKeys, kStride = D + kPad;
  bf16* sQ = reinterpret_cast<bf16*>(dynamic_smem());  // (kBr, kStride)
  bf16* sK = sQ + kBr * kStride;                        // 2 x (kBc, kStride)
  bf16* sV = sK + 2 * kBc * kStride;                    // 2 x (kBc, kStride)
  int32_t* sSeg = reinterpret_cast<int32_t*>(sV + 2 * kBc * kStride);  // 2 x kBc key ids

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;
  const int q_tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int kv = h / (Hq / Hkv);
  const int h_total = Hq + 2 * Hkv;

  // Row i of one head of qkv sits at base + i * row_stride.
  const int64_t row_stride = static_cast<int64_t>(h_total) * D;
  const bf16* q_base = qkv + (static_cast<int64_t>(b) * T * h_total + h) * D;
  const bf16* k_base = qkv + (static_cast<int64_t>(b) * T * h_total + Hq + kv) * D;
  const bf16* v_base = qkv + (static_cast<int64_t>(b) * T * h_total + Hq + Hkv + kv) * D;

  const int q0 = q_tile * kBr;
  const int q_last = min(q0 + kBr, T) - 1;
  // Keys 0 .. q_last are visible to some row of this tile; with segments only those from the
  // start of row q0's document on (ids never decrease, so later rows' documents start later).
  const int32_t* seg = segments ? segments + static_cast<int64_t>(b) * T : nullptr;
  const int j_begin = seg ? documents::segment_start(seg, q0) / kBc : 0;
  const int n_tiles = q_last / kBc + 1;

  load_rows_async<D, kBr>(sQ, q_base, row_stride, q0, T, tid);
  load_rows_async<D, kBc>(sK, k_base, row_stride, j_begin * kBc, T, tid);
  load_rows_async<D, kBc>(sV, v_base, row_stride, j_begin * kBc, T, tid);
  if (seg) load_vec_async<kBc>(sSeg, seg, j_begin * kBc, T, tid);
  cp_async_commit();

  // This thread's rows of the warp's 16: r = 0 -> row g, r = 1 -> row g + 8.
  float o[D / 8][4] = {};               // O accumulator (16 x D per warp), unnormalised
  float m[2] = {-INFINITY, -INFINITY};  // running max of the scaled scores, log2 units
  float l[2] = {0.f, 0.f};              // running sum of exp2(s - m), this thread's columns
  const int row_lo = q0 + warp * 16 + g;  // query index of r = 0; r = 1 is + 8
  // The document ids of this thread's two rows (rows past T are never stored).
  int row_doc[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r)
    if (seg && row_lo + r * 8 < T) row_doc[r] = seg[row_lo + r * 8];

  for (int j = j_begin; j < n_tiles; ++j) {
    const int buf = (j - j_begin) & 1;
    const bf16* sKb = sK + buf * kBc * kStride;
    const bf16* sVb = sV + buf * kBc * kStride;
    const int32_t* sSegb = sSeg + buf * kBc;
    // Prefetch tile j + 1 into the other buffer (free: the barrier closing iteration j - 1
    // saw every warp finish reading it), then wait for tile j only.
    if (j + 1 < n_tiles) {
      load_rows_async<D, kBc>(sK + (buf ^ 1) * kBc * kStride, k_base, row_stride, (j + 1) * kBc,
                              T, tid);
      load_rows_async<D, kBc>(sV + (buf ^ 1) * kBc * kStride, v_base, row_stride, (j + 1) * kBc,
                              T, tid);
      if (seg) load_vec_async<kBc>(sSeg + (buf ^ 1) * kBc, seg, (j + 1) * kBc, T, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    // S = Q K^T for the warp's 16 rows: (16, kBc) as kBc / 8 accumulator blocks.
    float s[kBc / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4];
      load_a(qa, sQ, kStride, warp * 16, kk * 16, lane);
#pragma unroll
      for (int nb = 0; nb < kBc / 16; ++nb) {
        uint32_t kb[4];
        load_b(kb, sKb, kStride, nb * 16, kk * 16, lane);
        mma_bf16(s[2 * nb], qa, kb[0], kb[1]);
        mma_bf16(s[2 * nb + 1], qa, kb[2], kb[3]);
      }
    }

    // Scale into log2 units; mask keys after the query (causal), past the sequence end or in
    // another document. Only tiles reaching past the first row of this query tile or past T,
    // or whose span k0 .. q_last crosses a document boundary, need the test.
    const int k0 = j * kBc;
    const bool needs_mask =
        k0 + kBc - 1 > q0 || k0 + kBc > T || (seg && seg[k0] != seg[q_last]);
#pragma unroll
    for (int nb = 0; nb < kBc / 8; ++nb)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = nb * 8 + 2 * t + (c & 1);
        const int key = k0 + col;
        const int row = row_lo + (c >> 1) * 8;
        s[nb][c] *= scale_log2;
        if (needs_mask && (key > row || key >= T || (seg && sSegb[col] != row_doc[c >> 1])))
          s[nb][c] = -INFINITY;
      }

    // Online softmax, per row: the quad of lanes 4g .. 4g+3 holds the row's kBc columns.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
#pragma unroll
      for (int nb = 0; nb < kBc / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // A row that has seen only masked keys keeps max -inf; subtract 0 then (exp2(-inf) = 0)
      // instead of producing -inf - -inf = NaN.
      const float base = mx == -INFINITY ? 0.f : mx;
      const float correction = exp2f(m[r] - base);
      m[r] = mx;
      l[r] *= correction;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        o[nd][2 * r] *= correction;
        o[nd][2 * r + 1] *= correction;
      }
#pragma unroll
      for (int nb = 0; nb < kBc / 8; ++nb) {
        s[nb][2 * r] = exp2f(s[nb][2 * r] - base);
        s[nb][2 * r + 1] = exp2f(s[nb][2 * r + 1] - base);
        l[r] += s[nb][2 * r] + s[nb][2 * r + 1];
      }
    }

    // O += P V: P (16, kBc) from the score registers (bf16), V tile (kBc, D) from smem.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t pa[4];
      accum_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int nd = 0; nd < D / 16; ++nd) {
        uint32_t vb[4];
        load_b_trans(vb, sVb, kStride, nd * 16, kk * 16, lane);
        mma_bf16(o[2 * nd], pa, vb[0], vb[1]);
        mma_bf16(o[2 * nd + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer `buf` before it is refilled
  }

  // Finish the row sums across the quad, normalise, and write lse and O.
  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv_l[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
    const int row = row_lo + r * 8;
    // lse = ln(sum exp(scale * s)) = ln(2^m * l) = m ln 2 + ln l.
    if (t == 0 && row < T)
      lse[(static_cast<int64_t>(b) * Hq + h) * T + row] = m[r] * kLn2 + logf(l[r]);
  }
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) {
    o[nd][0] *= inv_l[0];
    o[nd][1] *= inv_l[0];
    o[nd][2] *= inv_l[1];
    o[nd][3] *= inv_l[1];
  }
  // The warp's own 16 rows of sQ are read by no other warp: reuse them to stage O.
  bf16* out_base = out + (static_cast<int64_t>(b) * T * Hq + h) * D;
  store_tile_rows<D>(sQ + warp * 16 * kStride, o, 1.f, out_base, static_cast<int64_t>(Hq) * D,
                     q0 + warp * 16, T, lane);
}

}  // namespace meap::cuda::attn
