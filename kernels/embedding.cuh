// Device code of the token embedding (launched by kernels/embedding.cu): the gather forward
// and the two kernels around the backward's stable sort -- building the (token, position)
// pairs and adding each run of equal tokens into its table row. The sort itself is CUB's
// DeviceRadixSort, in the launcher. Also compiled on the host by tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

#include "cuda_common.cuh"

namespace meap::cuda::embedding_kernels {

using detail::from_f32;
using detail::to_f32;

// out (n, c): one thread per element, grid-stride.
template <class S>
__global__ void embedding_forward_kernel(S* out, const int32_t* tokens, const S* table,
                                         int64_t n, int64_t v, int64_t c) {
  const int64_t total = n * c;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / c, j = e % c;
    const int32_t tok = tokens[i];
    out[e] = (tok >= 0 && tok < v) ? table[static_cast<int64_t>(tok) * c + j]
                                   : from_f32<S>(__uint_as_float(0x7fc00000u));
  }
}

// Sort input: keys (n) = token, or v for a token outside [0, v) (sorted last, skipped);
// positions (n) = 0..n-1.
__global__ void embedding_sort_input_kernel(uint32_t* keys, int32_t* positions,
                                            const int32_t* tokens, int64_t n, int64_t v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t tok = tokens[i];
    keys[i] = (tok >= 0 && tok < v) ? static_cast<uint32_t>(tok) : static_cast<uint32_t>(v);
    positions[i] = static_cast<int32_t>(i);
  }
}

// Block i (one per sorted entry) works only if entry i starts a run of equal tokens; its
// threads stride over the c columns and add the run's dout rows (positions ascending, as
// the stable sort left them) onto dtable's row. Exactly one block writes each row.
template <class S>
__global__ void embedding_backward_runs_kernel(float* dtable, const S* dout,
                                               const uint32_t* sorted_keys,
                                               const int32_t* sorted_positions, int64_t n,
                                               int64_t v, int64_t c) {
  const int64_t i = blockIdx.x;
  const uint32_t key = sorted_keys[i];
  if (key >= static_cast<uint64_t>(v)) return;             // invalid tokens, skipped
  if (i > 0 && sorted_keys[i - 1] == key) return;           // inside a run, not its start
  int64_t end = i + 1;
  while (end < n && sorted_keys[end] == key) ++end;
  float* row = dtable + static_cast<int64_t>(key) * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    float acc = row[j];
    for (int64_t r = i; r < end; ++r)
      acc += to_f32(dout[static_cast<int64_t>(sorted_positions[r]) * c + j]);
    row[j] = acc;
  }
}

// ---- launch geometry (host), shared by the launcher and the emulated test ------------------
// Threads of a runs-kernel block: one per column, rounded up to whole warps, at most kThreads.
inline int runs_threads(int64_t c) {
  return c >= detail::kThreads ? detail::kThreads : static_cast<int>((c + 31) / 32 * 32);
}

// Key bits the radix sort needs: keys are in [0, v].
inline int key_bits(int64_t v) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) <= v) ++bits;
  return bits;
}

}  // namespace meap::cuda::embedding_kernels
