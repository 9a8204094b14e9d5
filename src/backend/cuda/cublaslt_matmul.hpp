// CublasLtMatmul: the linear layer's three GEMMs through cuBLASLt, with the matmul
// descriptors, layouts and chosen algorithm cached per shape (and pointer alignment), and
// one 32 MiB workspace allocated once. Row-major tensors as in meap/backend.hpp:
//   forward    out (n, oc)  = x (n, ic) @ w^T,   w (oc, ic) as in torch.nn.Linear
//   backward   dx  (n, ic)  = dout (n, oc) @ w   (overwritten)
//              dw  (oc, ic) += dout^T @ x        (beta = 1)
// fp32: every matrix f32, CUBLAS_COMPUTE_32F_PEDANTIC (no TF32, no emulation), falling back
// to CUBLAS_COMPUTE_32F only if no pedantic algorithm exists. bf16: x, w, out, dout, dx
// bf16 and dw f32, CUBLAS_COMPUTE_32F accumulation. Under MEAP_CUDA_EMULATION the op tests
// put a host GEMM in its place (tests/emulated_cuda.cpp): cuBLASLt is not emulated.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>

#include "cuda_check.hpp"
#ifndef MEAP_CUDA_EMULATION
#include <cublasLt.h>
#endif

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

class CublasLtMatmul {
 public:
  explicit CublasLtMatmul(cudaStream_t stream);
  ~CublasLtMatmul();
  CublasLtMatmul(const CublasLtMatmul&) = delete;
  CublasLtMatmul& operator=(const CublasLtMatmul&) = delete;

  // act: the dtype of x, w, out, dout, dx (CUDA_R_32F or CUDA_R_16BF); dw is always f32.
  void forward(void* out, const void* x, const void* w, int64_t n, int64_t ic, int64_t oc,
               cudaDataType_t act);
  void backward_dx(void* dx, const void* dout, const void* w, int64_t n, int64_t ic, int64_t oc,
                   cudaDataType_t act);
  void backward_dw(float* dw, const void* dout, const void* x, int64_t n, int64_t ic, int64_t oc,
                   cudaDataType_t act);

  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

#ifndef MEAP_CUDA_EMULATION
 private:
  // Column-major D (m, n; ld ldd) = op(A) op(B) + beta D, op(A) (m, k), op(B) (k, n).
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a,
            cudaDataType_t a_type, int64_t lda, const void* b, cudaDataType_t b_type,
            int64_t ldb, void* d, cudaDataType_t d_type, int64_t ldd, float beta);

  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // (trans_a, trans_b, m, n, k, lda, ldb, ldd, a/b/d types, a/b/d pointer alignments)
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int,
                         int, int, uint32_t, uint32_t, uint32_t>;
  const Plan& plan_for(const Key& key);
  // Creates the descriptors for compute; false (nothing kept) when no algorithm exists.
  bool try_plan(const Key& key, cublasComputeType_t compute, Plan* plan);
  static void destroy(Plan& plan);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<Key, Plan> plans_;
#endif
};

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
