// Device code of the reference causal GQA attention (launched by kernels/attention_reference.cu;
// also compiled on the host by tests/cuda_emulator.hpp). Every block owns one row and walks
// the other side's rows in chunks of kChunk: its warps compute one score each (lanes split
// the head dim, a warp reduction adds them up), the chunk's scores go to shared memory, then
// thread j accumulates output column j over the chunk in row order. Nothing is accumulated
// across blocks, so there are no atomics and the results do not vary from run to run.
//   forward  block (query row t, query head h, batch b): two passes over keys s0..t, the
//            first for the running max / sum (the lse), the second for out = sum p v.
//   dQ       block (t, h, b): delta = rowsum(dout * out) (saved for dK/dV), then
//            dq = scale sum_s p (dout . v_s - delta) k_s over keys s0 <= s <= t.
//   dK, dV   block (key row s, kv head g, b): over the group's query heads and query rows
//            s <= t < t1, dk = sum ds q_t, dv = sum p dout_t (the CPU reference's order).
// s0 = 0 and t1 = T without segments; with them (packed documents, kernels/segments.cuh) the
// start of row t's document and the end of row s's: the rows of one document are contiguous,
// so these bounds are the whole mask.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cuda_common.cuh"
#include "segments.cuh"

namespace meap::cuda::attention_reference_kernels {

using detail::block_sum;
using detail::from_f32;
using detail::to_f32;
using detail::warp_max;
using detail::warp_sum;

constexpr int kChunk = 64;  // rows of the other side per step (scores in shared memory)

struct Dims {
  int64_t t;    // sequence length
  int hq, hkv;  // query heads, kv heads
  int d;        // head dim
  float scale;  // 1 / sqrt(d)
  const int32_t* segments;  // (B, T) document ids, non-decreasing per row; null: one per row
  __host__ __device__ int h() const { return hq + 2 * hkv; }
  // First key query row ti of batch b may read; one past the last query key row s is read by.
  __device__ int64_t first_key(int64_t b, int64_t ti) const {
    return segments ? documents::segment_start(segments + b * t, ti) : 0;
  }
  __device__ int64_t query_end(int64_t b, int64_t s) const {
    return segments ? documents::segment_end(segments + b * t, s, t) : t;
  }
};

// Row (b, ti, head) of qkv (B, T, H, D).
template <class S>
__device__ __forceinline__ const S* qkv_row(const S* qkv, const Dims& k, int64_t b, int64_t ti,
                                            int head) {
  return qkv + ((b * k.t + ti) * k.h() + head) * k.d;
}

// Row (b, ti, h) of a (B, T, Hq, D) tensor (out, dout).
template <class S>
__device__ __forceinline__ const S* head_row(const S* x, const Dims& k, int64_t b, int64_t ti,
                                             int h) {
  return x + ((b * k.t + ti) * k.hq + h) * k.d;
}

// Dot product of a shared fp32 row and a global row of d, by one warp; every lane gets it.
template <class S>
__device__ __forceinline__ float warp_dot(const float* a_shared, const S* b_global, int d) {
  float s = 0.f;
  for (int j = threadIdx.x & 31; j < d; j += 32) s += a_shared[j] * to_f32(b_global[j]);
  return warp_sum(s);
}

template <class S>
__global__ void attention_forward_kernel(S* out, float* lse, const S* qkv, Dims k) {
  float* q_s = detail::dynamic_shared<float>();  // (d) this block's query row
  __shared__ float sc[kChunk];    // the chunk's scaled scores
  __shared__ float run_m, run_l;  // running max and sum of exp(score - max)
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int group = k.hq / k.hkv;
  const int kh = k.hq + h / group, vh = k.hq + k.hkv + h / group;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;

  const S* q = qkv_row(qkv, k, b, t, h);
  for (int j = threadIdx.x; j < k.d; j += blockDim.x) q_s[j] = to_f32(q[j]);
  if (threadIdx.x == 0) {
    run_m = -INFINITY;
    run_l = 0.f;
  }
  __syncthreads();

  // Pass 1: lse over keys s0..t.
  const int64_t s0 = k.first_key(b, t);
  for (int64_t c0 = s0; c0 <= t; c0 += kChunk) {
    const int cnt = static_cast<int>(t + 1 - c0 < kChunk ? t + 1 - c0 : kChunk);
    for (int e = warp; e < cnt; e += n_warps) {
      const float dot = warp_dot(q_s, qkv_row(qkv, k, b, c0 + e, kh), k.d);
      if (lane == 0) sc[e] = dot * k.scale;
    }
    __syncthreads();
    if (warp == 0) {
      float cm = -INFINITY;
      for (int e = lane; e < cnt; e += 32) cm = fmaxf(cm, sc[e]);
      cm = warp_max(cm);
      const float m_old = run_m;
      const float m_new = fmaxf(m_old, cm);
      float s = 0.f;
      for (int e = lane; e < cnt; e += 32) s += expf(sc[e] - m_new);
      s = warp_sum(s);
      __syncwarp();  // every lane has read run_m before lane 0 replaces it
      if (lane == 0) {
        run_l = run_l * expf(m_old - m_new) + s;
        run_m = m_new;
      }
    }
    __syncthreads();
  }
  const float row_lse = run_m + logf(run_l);

  // Pass 2: out = sum_s exp(score_s - lse) v_s, thread j owning column j.
  const int j = threadIdx.x;
  float acc = 0.f;
  for (int64_t c0 = s0; c0 <= t; c0 += kChunk) {
    const int cnt = static_cast<int>(t + 1 - c0 < kChunk ? t + 1 - c0 : kChunk);
    for (int e = warp; e < cnt; e += n_warps) {
      const float dot = warp_dot(q_s, qkv_row(qkv, k, b, c0 + e, kh), k.d);
      if (lane == 0) sc[e] = expf(dot * k.scale - row_lse);
    }
    __syncthreads();
    if (j < k.d)
      for (int e = 0; e < cnt; ++e) acc += sc[e] * to_f32(qkv_row(qkv, k, b, c0 + e, vh)[j]);
    __syncthreads();
  }
  if (j < k.d) out[((b * k.t + t) * k.hq + h) * k.d + j] = from_f32<S>(acc);
  if (threadIdx.x == 0) lse[(b * k.hq + h) * k.t + t] = row_lse;
}

template <class S>
__global__ void attention_backward_dq_kernel(S* dqkv, float* delta_out, const S* dout,
                                             const S* qkv, const S* out, const float* lse,
                                             Dims k) {
  float* rows = detail::dynamic_shared<float>();  // q_s (d), go_s (d)
  float* q_s = rows;
  float* go_s = rows + k.d;
  __shared__ float ds_s[kChunk];
  __shared__ double red[32];
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int group = k.hq / k.hkv;
  const int kh = k.hq + h / group, vh = k.hq + k.hkv + h / group;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;

  const S* q = qkv_row(qkv, k, b, t, h);
  const S* go = head_row(dout, k, b, t, h);
  const S* o = head_row(out, k, b, t, h);
  double part = 0.0;
  for (int j = threadIdx.x; j < k.d; j += blockDim.x) {
    q_s[j] = to_f32(q[j]);
    go_s[j] = to_f32(go[j]);
    part += static_cast<double>(go_s[j]) * to_f32(o[j]);
  }
  const float delta = static_cast<float>(block_sum(part, red));  // also publishes q_s, go_s
  const int64_t stat = (b * k.hq + h) * k.t + t;
  if (threadIdx.x == 0) delta_out[stat] = delta;
  const float l = lse[stat];

  const int j = threadIdx.x;
  float acc = 0.f;
  for (int64_t c0 = k.first_key(b, t); c0 <= t; c0 += kChunk) {
    const int cnt = static_cast<int>(t + 1 - c0 < kChunk ? t + 1 - c0 : kChunk);
    for (int e = warp; e < cnt; e += n_warps) {
      const float qk = warp_dot(q_s, qkv_row(qkv, k, b, c0 + e, kh), k.d);
      const float gv = warp_dot(go_s, qkv_row(qkv, k, b, c0 + e, vh), k.d);
      const float p = expf(qk * k.scale - l);
      if (lane == 0) ds_s[e] = p * (gv - delta) * k.scale;
    }
    __syncthreads();
    if (j < k.d)
      for (int e = 0; e < cnt; ++e) acc += ds_s[e] * to_f32(qkv_row(qkv, k, b, c0 + e, kh)[j]);
    __syncthreads();
  }
  if (j < k.d) dqkv[((b * k.t + t) * k.h() + h) * k.d + j] = from_f32<S>(acc);
}

template <class S>
__global__ void attention_backward_dkv_kernel(S* dqkv, const S* dout, const S* qkv,
                                              const float* lse, const float* delta, Dims k) {
  float* rows = detail::dynamic_shared<float>();  // k_s (d), v_s (d): this block's K, V rows
  float* k_s = rows;
  float* v_s = rows + k.d;
  __shared__ float p_s[kChunk], ds_s[kChunk];
  const int64_t s = blockIdx.x;
  const int g = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int group = k.hq / k.hkv;
  const int kh = k.hq + g, vh = k.hq + k.hkv + g;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;

  const S* kr = qkv_row(qkv, k, b, s, kh);
  const S* vr = qkv_row(qkv, k, b, s, vh);
  for (int j = threadIdx.x; j < k.d; j += blockDim.x) {
    k_s[j] = to_f32(kr[j]);
    v_s[j] = to_f32(vr[j]);
  }
  __syncthreads();

  const int j = threadIdx.x;
  float acc_k = 0.f, acc_v = 0.f;
  const int64_t t1 = k.query_end(b, s);
  for (int h = g * group; h < (g + 1) * group; ++h) {
    for (int64_t c0 = s; c0 < t1; c0 += kChunk) {
      const int cnt = static_cast<int>(t1 - c0 < kChunk ? t1 - c0 : kChunk);
      for (int e = warp; e < cnt; e += n_warps) {
        const int64_t ti = c0 + e;
        const float qk = warp_dot(k_s, qkv_row(qkv, k, b, ti, h), k.d);
        const float gv = warp_dot(v_s, head_row(dout, k, b, ti, h), k.d);
        const int64_t stat = (b * k.hq + h) * k.t + ti;
        const float p = expf(qk * k.scale - lse[stat]);
        if (lane == 0) {
          p_s[e] = p;
          ds_s[e] = p * (gv - delta[stat]) * k.scale;
        }
      }
      __syncthreads();
      if (j < k.d)
        for (int e = 0; e < cnt; ++e) {
          acc_k += ds_s[e] * to_f32(qkv_row(qkv, k, b, c0 + e, h)[j]);
          acc_v += p_s[e] * to_f32(head_row(dout, k, b, c0 + e, h)[j]);
        }
      __syncthreads();
    }
  }
  if (j < k.d) {
    dqkv[((b * k.t + s) * k.h() + kh) * k.d + j] = from_f32<S>(acc_k);
    dqkv[((b * k.t + s) * k.h() + vh) * k.d + j] = from_f32<S>(acc_v);
  }
}

// ---- launch geometry (host), shared by the launcher and the emulated test ------------------
// Threads per block: one per head-dim column, at least 4 warps for the score dots.
inline int block_threads(int d) {
  int t = (d + 31) / 32 * 32;
  return t < 128 ? 128 : t;
}

// Dynamic shared memory (bytes): the forward's query row; the backward kernels' two rows.
inline size_t forward_smem_bytes(int d) { return d * sizeof(float); }
inline size_t backward_smem_bytes(int d) { return 2 * d * sizeof(float); }

// The kernels' dimensions (shapes checked by the launcher).
inline Dims make_dims_unchecked(int64_t t, int hq, int hkv, int d,
                                const int32_t* segments = nullptr) {
  return Dims{t, hq, hkv, d, 1.0f / sqrtf(static_cast<float>(d)), segments};
}

}  // namespace meap::cuda::attention_reference_kernels
