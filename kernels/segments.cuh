// Document boundaries of packed rows (Backend::attention_forward's `segments`): one int32
// document id per token, non-decreasing along a row, so every document is a contiguous run
// [segment_start(i), segment_end(i)). Query t reads key s <= t only inside its own run. The
// attention kernels use these bounds to skip whole key (query) tiles that lie in other
// documents, and compare ids per element inside the tiles they do visit. Binary searches over
// the row's ids in global memory: every thread of a CTA asks the same question, so the loads
// are broadcasts (log2 T of them, once per CTA). Also compiled on the host by
// tests/cuda_emulator.hpp.
#pragma once

#include <cstdint>

namespace meap::cuda::documents {

// First index s <= i with ids[s] == ids[i] (ids: one row of T ids, non-decreasing).
template <class I>
__device__ __forceinline__ I segment_start(const int32_t* ids, I i) {
  const int32_t id = ids[i];
  I lo = 0, hi = i;  // the answer lies in [lo, hi]
  while (lo < hi) {
    const I mid = lo + (hi - lo) / 2;
    if (ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// One past the last index s >= i with ids[s] == ids[i], s < T.
template <class I>
__device__ __forceinline__ I segment_end(const int32_t* ids, I i, I T) {
  const int32_t id = ids[i];
  I lo = i + 1, hi = T;  // the answer lies in [lo, hi]
  while (lo < hi) {
    const I mid = lo + (hi - lo) / 2;
    if (ids[mid] > id)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

}  // namespace meap::cuda::documents
