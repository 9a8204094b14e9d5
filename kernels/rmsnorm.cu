// Launchers of RMSNorm forward and backward (kernels in kernels/rmsnorm.cuh).
#include "rmsnorm.cuh"
#include "rmsnorm.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

using namespace rmsnorm_kernels;
using detail::kThreads;

template <class S>
void rmsnorm_forward(S* out, float* rstd, const S* x, const S* weight, int64_t n, int64_t c,
                     double eps, cudaStream_t stream) {
  if (n == 0) return;
  MEAP_CHECK(n < (int64_t{1} << 31), "rmsnorm: too many rows");
  launch(rmsnorm_forward_kernel<S>, static_cast<unsigned>(n), row_threads(c), 0, stream, out, rstd,
         x, weight, c, static_cast<float>(eps));
}

size_t rmsnorm_backward_scratch_bytes(int64_t n, int64_t c) {
  const int64_t chunks = (n + rows_per_chunk(n) - 1) / rows_per_chunk(n);
  return static_cast<size_t>(chunks * c) * sizeof(float);
}

template <class S>
void rmsnorm_backward(S* dx, float* dweight, const S* dout, const S* x, const S* weight,
                      const float* rstd, int64_t n, int64_t c, void* scratch, size_t scratch_bytes,
                      cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  MEAP_CHECK(n < (int64_t{1} << 31), "rmsnorm: too many rows");
  MEAP_CHECK(scratch_bytes >= rmsnorm_backward_scratch_bytes(n, c),
             "rmsnorm backward scratch too small");
  launch(rmsnorm_backward_dx_kernel<S>, static_cast<unsigned>(n), row_threads(c), 0, stream, dx,
         dout, x, weight, rstd, c);
  const int64_t chunk_rows = rows_per_chunk(n);
  const int64_t chunks = (n + chunk_rows - 1) / chunk_rows;
  float* partial = static_cast<float*>(scratch);
  const dim3 grid(static_cast<unsigned>((c + kThreads - 1) / kThreads),
                  static_cast<unsigned>(chunks));
  launch(rmsnorm_dweight_partial_kernel<S>, grid, kThreads, 0, stream, partial, dout, x, rstd, n, c,
         chunk_rows);
  launch(rmsnorm_dweight_final_kernel, static_cast<unsigned>((c + kThreads - 1) / kThreads),
         kThreads, 0, stream, dweight, partial, chunks, c);
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t,
                                     double, cudaStream_t);
template void rmsnorm_forward<uint16_t>(uint16_t*, float*, const uint16_t*, const uint16_t*,
                                        int64_t, int64_t, double, cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int64_t, int64_t, void*, size_t, cudaStream_t);
template void rmsnorm_backward<uint16_t>(uint16_t*, float*, const uint16_t*, const uint16_t*,
                                         const uint16_t*, const float*, int64_t, int64_t, void*,
                                         size_t, cudaStream_t);

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
