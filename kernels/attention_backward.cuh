// The flash-attention backward kernels (causal, grouped-query, bf16 in, fp32 accumulation),
// deterministic: no atomics; every output element is summed by one thread in a fixed order.
//   1. delta:  Delta (B, Hq, T) = rowsum(dO * O), fp32, one warp per row.
//   2. dK, dV: one CTA per (key tile of 64, kv head, batch); 4 warps, 16 keys each. The CTA
//              loops over the group's query heads, then over the query tiles from its diagonal
//              to the end, recomputing P^T = exp(S^T - lse) and accumulating
//              dV += P^T dO and dK += dS^T Q in registers.
//   3. dQ:     one CTA per (query tile of 64, query head, batch); 4 warps, 16 rows each. The
//              CTA loops over the key tiles up to its diagonal: dQ += dS K.
// With P = softmax(S): dP = dO V^T, dS = P * (dP - Delta), dQ = scale dS K, dK = scale dS^T Q.
// With document segments (packed rows) the dK/dV CTA stops after the query tile holding the
// end of its last key's document, the dQ CTA starts at the key tile holding the start of its
// first row's document, and pairs across documents are masked inside the tiles.
// Launched by attention_backward.cu; tiling and the determinism argument: docs/kernels.md;
// fragment layouts: attention_tiles.cuh.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "attention_tiles.cuh"
#include "segments.cuh"

namespace meap::cuda::attn {

constexpr int kBwdTile = 64;  // keys per dK/dV CTA, query rows per dQ CTA (16 per warp)
constexpr int kDqKeys = 64;   // keys per tile in the dQ kernel

// Query rows per tile in the dK/dV kernel. The warp's 16 x D dK and dV accumulators and its
// 16 x rows score and dP tiles all live in registers; at D = 128, 64 rows spill (ptxas at
// sm_90: 255 registers + 48 bytes of spill stores), 32 rows do not.
template <int D>
constexpr int kDkdvRows = D == 128 ? 32 : 64;

constexpr int kDeltaThreads = 256;

// ---- 1. Delta -----------------------------------------------------------------------------
// dout, out (B, T, Hq, D) -> delta (B, Hq, T). One warp per (b, t, h) row of n_rows; each lane
// sums D / 32 products, then a fixed xor-shuffle tree: the same order on every run.
// grid ceil(n_rows * 32 / kDeltaThreads), kDeltaThreads threads.
template <int D>
__global__ void __launch_bounds__(kDeltaThreads)
    attention_delta_kernel(float* __restrict__ delta, const __nv_bfloat16* __restrict__ dout,
                           const __nv_bfloat16* __restrict__ out, int64_t n_rows, int T, int Hq) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n_rows) return;  // whole warps leave together: a warp shares one row
  constexpr int kPer = D / 32;  // 2 or 4 consecutive elements per lane
  const __nv_bfloat16* go = dout + row * D + lane * kPer;
  const __nv_bfloat16* o = out + row * D + lane * kPer;
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) sum += __bfloat162float(go[i]) * __bfloat162float(o[i]);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) {
    // row = (b * T + t) * Hq + h  ->  delta index (b * Hq + h) * T + t
    const int h = static_cast<int>(row % Hq);
    const int64_t bt = row / Hq;
    const int t = static_cast<int>(bt % T);
    const int64_t b = bt / T;
    delta[(b * Hq + h) * T + t] = sum;
  }
}

// ---- 2. dK and dV ----------------------------------------------------------------------------
template <int D>
constexpr size_t dkdv_smem_bytes() {
  constexpr int br = kDkdvRows<D>;
  // K, V (kBwdTile rows), Q and dO (br rows, two buffers each), then lse and Delta (two each),
  // then the query tiles' document ids (two buffers, used with segments only).
  return static_cast<size_t>(2 * kBwdTile + 4 * br) * (D + kPad) * sizeof(__nv_bfloat16) +
         4 * br * sizeof(float) + 2 * br * sizeof(int32_t);
}

// dqkv's kv heads <- (dK, dV). grid (ceil(T / kBwdTile), Hkv, B), kThreads threads;
// blockIdx.x = key tile, so tile 0 (the most work) goes first. segments (B, T) or null.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_dkdv_kernel(__nv_bfloat16* __restrict__ dqkv, const __nv_bfloat16* __restrict__ dout,
                          const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ lse,
                          const float* __restrict__ delta, const int32_t* __restrict__ segments,
                          int T, int Hq, int Hkv, float scale, float scale_log2) {
  using bf16 = __nv_bfloat16;
  constexpr int kBr = kDkdvRows<D>, kBc = kBwdTile, kStride = D + kPad;
  bf16* sK = reinterpret_cast<bf16*>(dynamic_smem());  // (kBc, kStride)
  bf16* sV = sK + kBc * kStride;                        // (kBc, kStride)
  bf16* sQ = sV + kBc * kStride;                        // 2 x (kBr, kStride)
  bf16* sdO = sQ + 2 * kBr * kStride;                   // 2 x (kBr, kStride)
  float* sLse = reinterpret_cast<float*>(sdO + 2 * kBr * kStride);  // 2 x kBr, natural log
  float* sDelta = sLse + 2 * kBr;                                     // 2 x kBr
  int32_t* sSeg = reinterpret_cast<int32_t*>(sDelta + 2 * kBr);       // 2 x kBr query ids

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;
  const int k_tile = blockIdx.x, kv = blockIdx.y, b = blockIdx.z;
  const int group = Hq / Hkv;
  const int h_total = Hq + 2 * Hkv;
  const int64_t row_stride = static_cast<int64_t>(h_total) * D;  // qkv, dqkv rows
  const int64_t dout_stride = static_cast<int64_t>(Hq) * D;      // dout rows
  const int64_t qkv_b = static_cast<int64_t>(b) * T * h_total;   // first row of batch b
  const bf16* k_base = qkv + (qkv_b + Hq + kv) * D;
  const bf16* v_base = qkv + (qkv_b + Hq + Hkv + kv) * D;

  const int k0 = k_tile * kBc;
  const int k_last = min(k0 + kBc, T) - 1;
  // Queries before k0 see none of these keys: start at the query tile holding row k0. With
  // segments, queries from the end of the last key's document on see none either (ids never
  // decrease): stop after the query tile holding row q_end - 1.
  const int32_t* seg = segments ? segments + static_cast<int64_t>(b) * T : nullptr;
  const int q_end = seg ? documents::segment_end(seg, k_last, T) : T;
  const int first_q_tile = k0 / kBr;
  const int n_q_tiles = (q_end + kBr - 1) / kBr - first_q_tile;
  const int n_steps = group * n_q_tiles;  // (query head, query tile) pairs, head-major

  // Loads the Q, dO, lse and Delta tiles of step `step` into buffer `buf`.
  auto load_step = [&](int step, int buf) {
    const int h = kv * group + step / n_q_tiles;
    const int q0 = (first_q_tile + step % n_q_tiles) * kBr;
    const int64_t hv = static_cast<int64_t>(b) * Hq + h;  // (b, h) row of lse / Delta
    load_rows_async<D, kBr>(sQ + buf * kBr * kStride, qkv + (qkv_b + h) * D, row_stride, q0, T,
                            tid);
    load_rows_async<D, kBr>(sdO + buf * kBr * kStride,
                            dout + (static_cast<int64_t>(b) * T * Hq + h) * D, dout_stride, q0,
                            T, tid);
    load_vec_async<kBr>(sLse + buf * kBr, lse + hv * T, q0, T, tid);
    load_vec_async<kBr>(sDelta + buf * kBr, delta + hv * T, q0, T, tid);
    if (seg) load_vec_async<kBr>(sSeg + buf * kBr, seg, q0, T, tid);
  };

  load_rows_async<D, kBc>(sK, k_base, row_stride, k0, T, tid);
  load_rows_async<D, kBc>(sV, v_base, row_stride, k0, T, tid);
  load_step(0, 0);
  cp_async_commit();

  float dk[D / 8][4] = {};  // dK (16 keys x D per warp), unscaled
  float dv[D / 8][4] = {};  // dV (16 keys x D per warp)
  const int key_lo = k0 + warp * 16 + g;  // key of accumulator rows c = 0, 1; c = 2, 3 is + 8
  // The document ids of this thread's two keys (keys past T are never stored).
  int key_doc[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r)
    if (seg && key_lo + r * 8 < T) key_doc[r] = seg[key_lo + r * 8];

  for (int step = 0; step < n_steps; ++step) {
    const int buf = step & 1;
    if (step + 1 < n_steps) {
      load_step(step + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* sQb = sQ + buf * kBr * kStride;
    const bf16* sdOb = sdO + buf * kBr * kStride;
    const float* sLseb = sLse + buf * kBr;
    const float* sDeltab = sDelta + buf * kBr;
    const int32_t* sSegb = sSeg + buf * kBr;
    const int q0 = (first_q_tile + step % n_q_tiles) * kBr;

    // S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys: (16, kBr) each. A = the warp's
    // rows of K (V), B^T = the Q (dO) tile as stored.
    float st[kBr / 8][4] = {};
    float dpt[kBr / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4], va[4];
      load_a(ka, sK, kStride, warp * 16, kk * 16, lane);
      load_a(va, sV, kStride, warp * 16, kk * 16, lane);
#pragma unroll
      for (int nb = 0; nb < kBr / 16; ++nb) {
        uint32_t qb[4], ob[4];
        load_b(qb, sQb, kStride, nb * 16, kk * 16, lane);
        mma_bf16(st[2 * nb], ka, qb[0], qb[1]);
        mma_bf16(st[2 * nb + 1], ka, qb[2], qb[3]);
        load_b(ob, sdOb, kStride, nb * 16, kk * 16, lane);
        mma_bf16(dpt[2 * nb], va, ob[0], ob[1]);
        mma_bf16(dpt[2 * nb + 1], va, ob[2], ob[3]);
      }
    }

    // P^T = exp(scale S^T - lse[q]), zero where the key comes after the query, the query is
    // past T or in another document; dS^T = P^T * (dP^T - Delta[q]). Accumulator element c of
    // block nb is (key key_lo + 8 (c >> 1), query q0 + 8 nb + 2t + (c & 1)). q0 >= k0 (kBr
    // divides kBc), so the tiles span k0 .. max(k_last, q_last).
    const int q_last = min(q0 + kBr, T) - 1, span_end = q_last > k_last ? q_last : k_last;
    const bool needs_mask =
        k0 + kBc - 1 > q0 || q0 + kBr > T || (seg && seg[k0] != seg[span_end]);
#pragma unroll
    for (int nb = 0; nb < kBr / 8; ++nb)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int qi = nb * 8 + 2 * t + (c & 1);  // query index within the tile
        const int key = key_lo + (c >> 1) * 8;
        float p = exp2f(st[nb][c] * scale_log2 - sLseb[qi] * kLog2e);
        if (needs_mask &&
            (key > q0 + qi || q0 + qi >= T || (seg && sSegb[qi] != key_doc[c >> 1])))
          p = 0.f;
        st[nb][c] = p;
        dpt[nb][c] = p * (dpt[nb][c] - sDeltab[qi]);
      }

    // dV += P^T dO and dK += dS^T Q: A from the registers above (k16 step = 16 queries),
    // B = the dO (Q) tile, stored (queries, D) row-major, i.e. B row-major: transposing loads.
#pragma unroll
    for (int kk = 0; kk < kBr / 16; ++kk) {
      uint32_t pa[4], dsa[4];
      accum_to_a(pa, st[2 * kk], st[2 * kk + 1]);
      accum_to_a(dsa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int nd = 0; nd < D / 16; ++nd) {
        uint32_t ob[4], qb[4];
        load_b_trans(ob, sdOb, kStride, nd * 16, kk * 16, lane);
        mma_bf16(dv[2 * nd], pa, ob[0], ob[1]);
        mma_bf16(dv[2 * nd + 1], pa, ob[2], ob[3]);
        load_b_trans(qb, sQb, kStride, nd * 16, kk * 16, lane);
        mma_bf16(dk[2 * nd], dsa, qb[0], qb[1]);
        mma_bf16(dk[2 * nd + 1], dsa, qb[2], qb[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer `buf` before it is refilled
  }

  // dK = scale dS^T Q. Each warp reads only its own 16 rows of sK / sV: stage there.
  store_tile_rows<D>(sK + warp * 16 * kStride, dk, scale, dqkv + (qkv_b + Hq + kv) * D,
                     row_stride, k0 + warp * 16, T, lane);
  store_tile_rows<D>(sV + warp * 16 * kStride, dv, 1.f, dqkv + (qkv_b + Hq + Hkv + kv) * D,
                     row_stride, k0 + warp * 16, T, lane);
}

// ---- 3. dQ -------------------------------------------------------------------------------
template <int D>
constexpr size_t dq_smem_bytes() {
  // Q and dO (kBwdTile rows), then K and V (kDqKeys rows, two buffers each), then the key
  // tiles' document ids (two buffers, used with segments only).
  return static_cast<size_t>(2 * kBwdTile + 4 * kDqKeys) * (D + kPad) * sizeof(__nv_bfloat16) +
         2 * kDqKeys * sizeof(int32_t);
}

// dqkv's query heads <- dQ. grid (ceil(T / kBwdTile), Hq, B), kThreads threads; the heaviest
// (last) query tiles go first. segments (B, T) or null.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_dq_kernel(__nv_bfloat16* __restrict__ dqkv, const __nv_bfloat16* __restrict__ dout,
                        const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ lse,
                        const float* __restrict__ delta, const int32_t* __restrict__ segments,
                        int T, int Hq, int Hkv, float scale, float scale_log2) {
  using bf16 = __nv_bfloat16;
  constexpr int kBr = kBwdTile, kBc = kDqKeys, kStride = D + kPad;
  bf16* sQ = reinterpret_cast<bf16*>(dynamic_smem());  // (kBr, kStride)
  bf16* sdO = sQ + kBr * kStride;                       // (kBr, kStride)
  bf16* sK = sdO + kBr * kStride;                       // 2 x (kBc, kStride)
  bf16* sV = sK + 2 * kBc * kStride;                    // 2 x (kBc, kStride)
  int32_t* sSeg = reinterpret_cast<int32_t*>(sV + 2 * kBc * kStride);  // 2 x kBc key ids

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;
  const int q_tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int kv = h / (Hq / Hkv);
  const int h_total = Hq + 2 * Hkv;
  const int64_t row_stride = static_cast<int64_t>(h_total) * D;
  const int64_t qkv_b = static_cast<int64_t>(b) * T * h_total;
  const bf16* k_base = qkv + (qkv_b + Hq + kv) * D;
  const bf16* v_base = qkv + (qkv_b + Hq + Hkv + kv) * D;

  const int q0 = q_tile * kBr;
  const int q_last = min(q0 + kBr, T) - 1;
  // Key tiles up to the diagonal; with segments from the one holding the start of row q0's
  // document (as in the forward).
  const int32_t* seg = segments ? segments + static_cast<int64_t>(b) * T : nullptr;
  const int j_begin = seg ? documents::segment_start(seg, q0) / kBc : 0;
  const int n_tiles = q_last / kBc + 1;

  load_rows_async<D, kBr>(sQ, qkv + (qkv_b + h) * D, row_stride, q0, T, tid);
  load_rows_async<D, kBr>(sdO, dout + (static_cast<int64_t>(b) * T * Hq + h) * D,
                          static_cast<int64_t>(Hq) * D, q0, T, tid);
  load_rows_async<D, kBc>(sK, k_base, row_stride, j_begin * kBc, T, tid);
  load_rows_async<D, kBc>(sV, v_base, row_stride, j_begin * kBc, T, tid);
  if (seg) load_vec_async<kBc>(sSeg, seg, j_begin * kBc, T, tid);
  cp_async_commit();

  // This thread's two rows (g, g + 8 of the warp's 16): lse in log2 units and Delta.
  const int row_lo = q0 + warp * 16 + g;
  float lse2[2], dlt[2];
  int row_doc[2] = {0, 0};  // document ids (segments only)
  const int64_t hv = (static_cast<int64_t>(b) * Hq + h) * T;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_lo + r * 8;
    lse2[r] = row < T ? lse[hv + row] * kLog2e : 0.f;
    dlt[r] = row < T ? delta[hv + row] : 0.f;
    if (seg && row < T) row_doc[r] = seg[row];
  }

  float dq[D / 8][4] = {};  // dQ (16 x D per warp), unscaled
  for (int j = j_begin; j < n_tiles; ++j) {
    const int buf = (j - j_begin) & 1;
    const bf16* sKb = sK + buf * kBc * kStride;
    const bf16* sVb = sV + buf * kBc * kStride;
    const int32_t* sSegb = sSeg + buf * kBc;
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

    // S = Q K^T and dP = dO V^T for the warp's 16 rows: (16, kBc) each.
    float s[kBc / 8][4] = {};
    float dp[kBc / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4], oa[4];
      load_a(qa, sQ, kStride, warp * 16, kk * 16, lane);
      load_a(oa, sdO, kStride, warp * 16, kk * 16, lane);
#pragma unroll
      for (int nb = 0; nb < kBc / 16; ++nb) {
        uint32_t kb[4], vb[4];
        load_b(kb, sKb, kStride, nb * 16, kk * 16, lane);
        mma_bf16(s[2 * nb], qa, kb[0], kb[1]);
        mma_bf16(s[2 * nb + 1], qa, kb[2], kb[3]);
        load_b(vb, sVb, kStride, nb * 16, kk * 16, lane);
        mma_bf16(dp[2 * nb], oa, vb[0], vb[1]);
        mma_bf16(dp[2 * nb + 1], oa, vb[2], vb[3]);
      }
    }

    // P = exp(scale S - lse), zero after the diagonal, past T and across documents;
    // dS = P * (dP - Delta).
    const int k0 = j * kBc;
    const bool needs_mask =
        k0 + kBc - 1 > q0 || k0 + kBc > T || (seg && seg[k0] != seg[q_last]);
#pragma unroll
    for (int nb = 0; nb < kBc / 8; ++nb)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = nb * 8 + 2 * t + (c & 1);
        const int key = k0 + col;
        const int r = c >> 1;
        float p = exp2f(s[nb][c] * scale_log2 - lse2[r]);
        if (needs_mask &&
            (key > row_lo + r * 8 || key >= T || (seg && sSegb[col] != row_doc[r])))
          p = 0.f;
        dp[nb][c] = p * (dp[nb][c] - dlt[r]);
      }

    // dQ += dS K: A = dS from registers (k16 step = 16 keys), B = K tile (keys, D) row-major.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t dsa[4];
      accum_to_a(dsa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int nd = 0; nd < D / 16; ++nd) {
        uint32_t kb[4];
        load_b_trans(kb, sKb, kStride, nd * 16, kk * 16, lane);
        mma_bf16(dq[2 * nd], dsa, kb[0], kb[1]);
        mma_bf16(dq[2 * nd + 1], dsa, kb[2], kb[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer `buf` before it is refilled
  }

  // dQ = scale dS K, into the query head's rows of dqkv. Stage in the warp's own sQ rows.
  store_tile_rows<D>(sQ + warp * 16 * kStride, dq, scale, dqkv + (qkv_b + h) * D, row_stride,
                     q0 + warp * 16, T, lane);
}

}  // namespace meap::cuda::attn
