// Device building blocks shared by the flash-attention kernels: asynchronous tile loads into
// padded shared memory, ldmatrix, and the bf16 tensor-core MMA m16n8k16 -- with the register
// fragment layouts they rely on, written down once here (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type" and "ldmatrix").
//
// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D (16x8) = A (16x16) B (16x8) + C
// In a warp, lane = 4 * g + t with g = lane / 4 ("groupID", 0..7) and t = lane % 4
// ("threadID_in_group", 0..3). A 32-bit register holds two bf16, the lower-indexed element
// in the low 16 bits.
//   A (row, M x K):  a[0] = A[g    ][2t, 2t+1]     a[1] = A[g + 8][2t, 2t+1]
//                    a[2] = A[g    ][2t+8, 2t+9]   a[3] = A[g + 8][2t+8, 2t+9]
//   B (col, K x N):  b[0] = B[2t, 2t+1  ][g]       b[1] = B[2t+8, 2t+9][g]
//   C, D (f32):      c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g + 8][2t, 2t+1]
// "col" B means B^T (N x K) is what sits row-major in memory: for S = Q K^T that is K itself.
//
// ---- ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16
// Loads four 8x8 bf16 matrices; lanes 8i .. 8i+7 give the row addresses (16 bytes each) of
// matrix i, and register r[i] of every lane receives a piece of matrix i:
//   plain:  r[i] = M_i[g][2t, 2t+1]      (lane holds row g, two adjacent columns)
//   .trans: r[i] = M_i[2t, 2t+1][g]      (lane holds column g, two adjacent rows)
// So with the row addresses chosen as below, one ldmatrix.x4 yields
//   load_a:        the A fragment of a 16x16 block of a row-major (M x K) matrix;
//   load_b:        B fragments of two n8 blocks for one k16 step, from a matrix stored
//                  (N x K) row-major (B^T: the K of S = Q K^T);
//   load_b_trans:  B fragments of two n8 blocks for one k16 step, from a matrix stored
//                  (K x N) row-major (the V of O = P V).
// Each helper's comment maps the four 8x8 matrices onto the fragment registers.
//
// ---- accumulator -> A operand
// The C fragment of two adjacent n8 blocks (16 columns) of a 16-row tile holds exactly the
// elements the A fragment of one k16 step needs (c[0..1] = row g, c[2..3] = row g + 8, columns
// 2t, 2t+1 of each block), so P = softmax(S) feeds P V straight from registers:
//   a[0] = pack(c_lo[0], c_lo[1])  a[1] = pack(c_lo[2], c_lo[3])
//   a[2] = pack(c_hi[0], c_hi[1])  a[3] = pack(c_hi[2], c_hi[3])
// with c_lo the block of columns 16k .. 16k+7 and c_hi that of 16k+8 .. 16k+15.
//
// Under MEAP_CUDA_EMULATION (tests/integration/test_attention_emulation.cpp) the PTX
// primitives -- cp.async, ldmatrix, mma, the dynamic shared memory -- come from a host-side
// emulator instead, and everything else in this file and in the kernels is compiled unchanged.
#pragma once

#include <cstdint>

#ifndef MEAP_CUDA_EMULATION
#include <cuda_bf16.h>
#endif

namespace meap::cuda::attn {

// Every attention kernel runs 4 warps; each owns 16 rows of the CTA's 64-row tile.
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// Shared-memory rows are padded by 8 bf16 (16 bytes): a row is then (D + 8) * 2 bytes = 4
// banks more than a multiple of 128 bytes, so the 8 row addresses of one ldmatrix 8x8 matrix
// (and the epilogue's row-wise writes) fall into 8 disjoint groups of 4 banks: no conflicts.
// Rows stay 16-byte aligned for cp.async and ldmatrix.
constexpr int kPad = 8;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- the PTX primitives ------------------------------------------------------------------
#ifndef MEAP_CUDA_EMULATION
// The launch's dynamic shared memory (its size is the launch's third argument).
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char smem[];
  return smem;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously. src_size 0 reads nothing and writes 16 zero
// bytes (PTX: bytes past src-size are zero-filled): how rows past the sequence end become 0.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)),
               "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}

// 4 bytes (one fp32) global -> shared, zero-filled when !valid.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)),
               "l"(gmem), "r"(valid ? 4 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most n of this thread's committed groups are still in flight.
template <int n>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// d += a * b on the tensor cores, fp32 accumulation.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif  // MEAP_CUDA_EMULATION

// ---- tiles in shared memory ----------------------------------------------------------------
// Copies rows [row0, row0 + kRows) of one head into shared memory, row r at
// smem + r * (D + kPad). Global row i starts at gmem + i * row_stride (elements); rows at or
// past `rows_valid` are zero-filled and never read. One 16-byte chunk per thread and step:
// consecutive threads read consecutive chunks of a row, so the loads coalesce.
template <int D, int kRows>
__device__ __forceinline__ void load_rows_async(__nv_bfloat16* smem, const __nv_bfloat16* gmem,
                                                int64_t row_stride, int row0, int rows_valid,
                                                int tid) {
  constexpr int kChunksPerRow = D / 8;
  static_assert((kRows * kChunksPerRow) % kThreads == 0, "tile chunks must divide evenly");
#pragma unroll
  for (int i = 0; i < kRows * kChunksPerRow / kThreads; ++i) {
    const int c = tid + i * kThreads;
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int row = row0 + r;
    const bool valid = row < rows_valid;
    // An invalid row still needs a mapped address: clamp it to row 0 of the head.
    const __nv_bfloat16* src = gmem + (valid ? row * row_stride : 0) + col;
    cp_async_16(smem + r * (D + kPad) + col, src, valid);
  }
}

// Copies kRows 4-byte values v[row0 .. row0 + kRows) (zero past rows_valid) into smem: fp32
// statistics (lse, Delta) or int32 document ids.
template <int kRows, class V>
__device__ __forceinline__ void load_vec_async(V* smem, const V* gmem, int row0, int rows_valid,
                                               int tid) {
  static_assert(sizeof(V) == 4, "cp.async of 4 bytes per value");
  for (int r = tid; r < kRows; r += kThreads) {
    const bool valid = row0 + r < rows_valid;
    cp_async_4(smem + r, gmem + (valid ? row0 + r : 0), valid);
  }
}

// ---- fragments ----------------------------------------------------------------------------
// A fragment of the 16x16 block at (row0, col0) of a row-major smem matrix (stride elements
// per row). Lane l addresses row row0 + (l & 15), column col0 + (l >> 4) * 8, so
//   matrix 0 (lanes 0-7)   = rows 0-7,  cols 0-7   -> r[0] = A[g][2t..]       = a[0]
//   matrix 1 (lanes 8-15)  = rows 8-15, cols 0-7   -> r[1] = A[g+8][2t..]     = a[1]
//   matrix 2 (lanes 16-23) = rows 0-7,  cols 8-15  -> r[2] = A[g][2t+8..]     = a[2]
//   matrix 3 (lanes 24-31) = rows 8-15, cols 8-15  -> r[3] = A[g+8][2t+8..]   = a[3]
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* s, int stride,
                                       int row0, int col0, int lane) {
  ldmatrix_x4(a, s + (row0 + (lane & 15)) * stride + col0 + (lane >> 4) * 8);
}

// B fragments for output columns n0 .. n0+15 (two n8 blocks) and reduction indices
// k0 .. k0+15, from smem holding B^T row-major: row n, column k (e.g. K for S = Q K^T,
// B[k][n] = K[n][k]). Lane l addresses row n0 + (l & 7) + (l >> 4) * 8, column
// k0 + ((l >> 3) & 1) * 8, so
//   matrix 0 = rows n0..+7,  k 0-7   -> r[0] = Bt[n0+g][k0+2t..]    = b[0] of block n0
//   matrix 1 = rows n0..+7,  k 8-15  -> r[1] = Bt[n0+g][k0+2t+8..]  = b[1] of block n0
//   matrix 2 = rows n0+8..,  k 0-7   -> r[2]                        = b[0] of block n0+8
//   matrix 3 = rows n0+8..,  k 8-15  -> r[3]                        = b[1] of block n0+8
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const __nv_bfloat16* s, int stride,
                                       int n0, int k0, int lane) {
  ldmatrix_x4(b, s + (n0 + (lane & 7) + (lane >> 4) * 8) * stride + k0 + ((lane >> 3) & 1) * 8);
}

// B fragments for output columns n0 .. n0+15 and reduction indices k0 .. k0+15, from smem
// holding B row-major: row k, column n (e.g. V for O = P V, B[k][n] = V[k][n]). Transposing
// loads: lane l addresses row k0 + (l & 15), column n0 + (l >> 4) * 8, so
//   matrix 0 = rows k0..+7,   cols n0..+7  -> r[0] = B[k0+2t..][n0+g]    = b[0] of block n0
//   matrix 1 = rows k0+8..15, cols n0..+7  -> r[1] = B[k0+8+2t..][n0+g]  = b[1] of block n0
//   matrix 2 = rows k0..+7,   cols n0+8..  -> r[2]                       = b[0] of block n0+8
//   matrix 3 = rows k0+8..15, cols n0+8..  -> r[3]                       = b[1] of block n0+8
__device__ __forceinline__ void load_b_trans(uint32_t (&b)[4], const __nv_bfloat16* s,
                                             int stride, int n0, int k0, int lane) {
  ldmatrix_x4_trans(b, s + (k0 + (lane & 15)) * stride + n0 + (lane >> 4) * 8);
}

// Two fp32 -> one register of two bf16 (round to nearest even), `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The A fragment of one k16 step from the fp32 accumulators of the two n8 blocks that cover
// its 16 columns (lo: columns 0-7, hi: 8-15): see "accumulator -> A operand" above.
__device__ __forceinline__ void accum_to_a(uint32_t (&a)[4], const float (&lo)[4],
                                           const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// Writes a warp's 16 x D fp32 accumulator tile acc[D / 8][4] (rows g, g + 8 of each n8 block)
// as bf16 into its own 16 rows of smem (stride D + kPad), then the warp copies those rows to
// global rows row0 .. row0 + 15 (row i at gmem + i * row_stride), skipping rows >= rows_valid,
// 16 bytes per store. `scale` multiplies every value first. The smem rows must be this warp's
// alone (the caller's tiling guarantees it).
template <int D>
__device__ __forceinline__ void store_tile_rows(__nv_bfloat16* smem_rows,
                                                const float (&acc)[D / 8][4], float scale,
                                                __nv_bfloat16* gmem, int64_t row_stride,
                                                int row0, int rows_valid, int lane) {
  constexpr int kStride = D + kPad;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nb = 0; nb < D / 8; ++nb) {
    *reinterpret_cast<uint32_t*>(smem_rows + g * kStride + nb * 8 + 2 * t) =
        pack_bf16(acc[nb][0] * scale, acc[nb][1] * scale);
    *reinterpret_cast<uint32_t*>(smem_rows + (g + 8) * kStride + nb * 8 + 2 * t) =
        pack_bf16(acc[nb][2] * scale, acc[nb][3] * scale);
  }
  __syncwarp();
  constexpr int kChunksPerRow = D / 8;
#pragma unroll
  for (int i = 0; i < 16 * kChunksPerRow / 32; ++i) {
    const int c = lane + i * 32;
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    if (row0 + r < rows_valid)
      *reinterpret_cast<uint4*>(gmem + (row0 + r) * row_stride + col) =
          *reinterpret_cast<const uint4*>(smem_rows + r * kStride + col);
  }
}

}  // namespace meap::cuda::attn
