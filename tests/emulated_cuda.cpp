// The emulated CUDA backend (emulated_cuda.hpp), and the host GEMM that stands in for
// cuBLASLt in it: the same three products as src/backend/cuda/cublaslt_matmul.cpp, on
// f32 or bf16 operands, accumulated in double and rounded once (dw is f32 and accumulates).
#include "emulated_cuda.hpp"

#include "backend/cuda/cublaslt_matmul.hpp"
#include "backend/cuda/cuda_backend.hpp"

namespace meap {
namespace cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

double load(const void* p, int64_t i, cudaDataType_t type) {
  return type == CUDA_R_32F ? static_cast<const float*>(p)[i]
                            : bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

void store(void* p, int64_t i, cudaDataType_t type, double v) {
  if (type == CUDA_R_32F)
    static_cast<float*>(p)[i] = static_cast<float>(v);
  else
    static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(v));
}

}  // namespace

CublasLtMatmul::CublasLtMatmul(cudaStream_t) {}
CublasLtMatmul::~CublasLtMatmul() = default;

// out (n, oc) = x (n, ic) @ w^T, w (oc, ic).
void CublasLtMatmul::forward(void* out, const void* x, const void* w, int64_t n, int64_t ic,
                             int64_t oc, cudaDataType_t act) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < oc; ++o) {
      double acc = 0;
      for (int64_t k = 0; k < ic; ++k) acc += load(x, i * ic + k, act) * load(w, o * ic + k, act);
      store(out, i * oc + o, act, acc);
    }
}

// dx (n, ic) = dout (n, oc) @ w.
void CublasLtMatmul::backward_dx(void* dx, const void* dout, const void* w, int64_t n, int64_t ic,
                                 int64_t oc, cudaDataType_t act) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < ic; ++k) {
      double acc = 0;
      for (int64_t o = 0; o < oc; ++o)
        acc += load(dout, i * oc + o, act) * load(w, o * ic + k, act);
      store(dx, i * ic + k, act, acc);
    }
}

// dw (oc, ic) += dout^T @ x.
void CublasLtMatmul::backward_dw(float* dw, const void* dout, const void* x, int64_t n, int64_t ic,
                                 int64_t oc, cudaDataType_t act) {
  for (int64_t o = 0; o < oc; ++o)
    for (int64_t k = 0; k < ic; ++k) {
      double acc = dw[o * ic + k];
      for (int64_t i = 0; i < n; ++i) acc += load(dout, i * oc + o, act) * load(x, i * ic + k, act);
      dw[o * ic + k] = static_cast<float>(acc);
    }
}

}  // namespace MEAP_CUDA_ABI
}  // namespace cuda

namespace testing {

std::unique_ptr<Backend> make_emulated_cuda_backend() { return std::make_unique<CudaBackend>(); }

void set_emulator_schedule(bool last_warp_first) {
  emu::schedule = last_warp_first ? emu::Order::last_warp_first : emu::Order::first_warp_first;
}

}  // namespace testing
}  // namespace meap
