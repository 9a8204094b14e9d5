// Launchers of the token embedding (kernels in kernels/embedding.cuh): gather forward,
// deterministic sort-based scatter-add backward (CUB's stable radix sort between two kernels).
#ifndef MEAP_CUDA_EMULATION  // the emulator has a stand-in
#include <cub/device/device_radix_sort.cuh>
#endif

#include "embedding.cuh"
#include "embedding.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

using namespace embedding_kernels;
using detail::kThreads;

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Scratch layout: keys_in, keys_out (n u32), positions_in, positions_out (n i32), CUB temp.
struct SortScratch {
  uint32_t *keys_in, *keys_out;
  int32_t *pos_in, *pos_out;
  void* temp;
  size_t temp_bytes;
};

size_t cub_temp_bytes(int64_t n, int64_t v) {
  size_t bytes = 0;
  MEAP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(n), 0,
      key_bits(v)));
  return bytes;
}

SortScratch carve(void* scratch, int64_t n, size_t temp_bytes) {
  char* p = static_cast<char*>(scratch);
  const size_t part = align256(static_cast<size_t>(n) * 4);
  return {reinterpret_cast<uint32_t*>(p),
          reinterpret_cast<uint32_t*>(p + part),
          reinterpret_cast<int32_t*>(p + 2 * part),
          reinterpret_cast<int32_t*>(p + 3 * part),
          p + 4 * part,
          temp_bytes};
}

}  // namespace

template <class S>
void embedding_forward(S* out, const int32_t* tokens, const S* table, int64_t n, int64_t v,
                       int64_t c, cudaStream_t stream) {
  if (n * c == 0) return;
  launch(embedding_forward_kernel<S>, detail::grid_for(n * c), kThreads, 0, stream, out, tokens,
         table, n, v, c);
}

size_t embedding_backward_scratch_bytes(int64_t n, int64_t v) {
  return 4 * align256(static_cast<size_t>(n) * 4) + align256(cub_temp_bytes(n, v));
}

template <class S>
void embedding_backward(float* dtable, const S* dout, const int32_t* tokens, int64_t n, int64_t v,
                        int64_t c, void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  MEAP_CHECK(n < (int64_t{1} << 31) && v < (int64_t{1} << 31),
             "embedding backward: more than 2^31 tokens or vocabulary entries");
  const size_t temp_bytes = cub_temp_bytes(n, v);
  MEAP_CHECK(scratch_bytes >= embedding_backward_scratch_bytes(n, v),
             "embedding backward scratch too small");
  SortScratch s = carve(scratch, n, temp_bytes);
  launch(embedding_sort_input_kernel, detail::grid_for(n), kThreads, 0, stream, s.keys_in, s.pos_in,
         tokens, n, v);
  size_t bytes = s.temp_bytes;
  MEAP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(s.temp, bytes, s.keys_in, s.keys_out, s.pos_in,
                                                  s.pos_out, static_cast<int>(n), 0, key_bits(v),
                                                  stream));
  launch(embedding_backward_runs_kernel<S>, static_cast<unsigned>(n), runs_threads(c), 0, stream,
         dtable, dout, s.keys_out, s.pos_out, n, v, c);
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t,
                                       int64_t, cudaStream_t);
template void embedding_forward<uint16_t>(uint16_t*, const int32_t*, const uint16_t*, int64_t,
                                          int64_t, int64_t, cudaStream_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                        int64_t, void*, size_t, cudaStream_t);
template void embedding_backward<uint16_t>(float*, const uint16_t*, const int32_t*, int64_t,
                                           int64_t, int64_t, void*, size_t, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
