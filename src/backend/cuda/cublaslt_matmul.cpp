// cuBLASLt GEMMs for the linear layer. Row-major (r, c) is column-major (c, r) with the same
// leading dimension, so with the column-major views
//   X (ic, n; ld ic), W (ic, oc; ld ic), dOut (oc, n; ld oc):
//   forward  Out (oc, n)  = W^T X      -> m = oc, n = n,  k = ic, A = W op T, B = X op N
//   dx       dX  (ic, n)  = W dOut     -> m = ic, n = n,  k = oc, A = W op N, B = dOut op N
//   dw       dW  (ic, oc) += X dOut^T  -> m = ic, n = oc, k = n,  A = X op N, B = dOut op T
#include "cublaslt_matmul.hpp"

#include "cublas_check.hpp"
#include "cuda_check.hpp"

namespace meap::cuda {
inline namespace MEAP_CUDA_ABI {

namespace {

// Largest power of two (up to 256) dividing the address: the alignment cuBLASLt may assume.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

size_t element_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

}  // namespace

CublasLtMatmul::CublasLtMatmul(cudaStream_t stream) : stream_(stream) {
  MEAP_CUBLAS_CHECK(cublasLtCreate(&handle_));
  MEAP_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
}

CublasLtMatmul::~CublasLtMatmul() {
  for (auto& [key, plan] : plans_) destroy(plan);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

void CublasLtMatmul::destroy(Plan& plan) {
  if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
  if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan{};
}

bool CublasLtMatmul::try_plan(const Key& key, cublasComputeType_t compute, Plan* plan) {
  const auto [trans_a, trans_b, m, n, k, lda, ldb, ldd, a_type, b_type, d_type, align_a,
              align_b, align_d] = key;
  Plan p;
  cublasLtMatmulPreference_t pref = nullptr;
  bool found = false;
  try {
    MEAP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    MEAP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                     sizeof(op_a)));
    MEAP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                     sizeof(op_b)));
    // Stored shapes: A is (m, k), or (k, m) when transposed; B is (k, n), or (n, k).
    MEAP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, static_cast<cudaDataType_t>(a_type),
                                                 trans_a ? k : m, trans_a ? m : k, lda));
    MEAP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, static_cast<cudaDataType_t>(b_type),
                                                 trans_b ? n : k, trans_b ? k : n, ldb));
    MEAP_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p.d, static_cast<cudaDataType_t>(d_type), m, n, ldd));

    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t workspace = kWorkspaceBytes;
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
    // Split-k partial sums only in the compute type (f32), never in a bf16 output buffer.
    const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes)));
    // The real pointer alignments (the default assumes 256 bytes).
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)));
    MEAP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));

    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    // C and D share one layout (C = D in place). NOT_SUPPORTED means no algorithm.
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d,
                                                             pref, 1, &result, &returned);
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) MEAP_CUBLAS_CHECK(st);
    found = st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (found) p.algo = result.algo;
  } catch (...) {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    destroy(p);
    throw;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (!found) {
    destroy(p);
    return false;
  }
  *plan = p;
  return true;
}

const CublasLtMatmul::Plan& CublasLtMatmul::plan_for(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const bool all_f32 = std::get<8>(key) == CUDA_R_32F && std::get<9>(key) == CUDA_R_32F &&
                       std::get<10>(key) == CUDA_R_32F;
  Plan plan;
  bool ok = false;
  if (all_f32) {
    // Whatever the reason pedantic fp32 is refused, plain CUBLAS_COMPUTE_32F (still no TF32:
    // that needs CUBLAS_COMPUTE_32F_FAST_TF32) is the fallback.
    try {
      ok = try_plan(key, CUBLAS_COMPUTE_32F_PEDANTIC, &plan);
    } catch (const Error&) {
      ok = false;
    }
  }
  if (!ok) ok = try_plan(key, CUBLAS_COMPUTE_32F, &plan);
  if (!ok)
    fail("cuBLASLt has no algorithm for the GEMM m=", std::get<2>(key), " n=", std::get<3>(key),
         " k=", std::get<4>(key), " (A type ", std::get<8>(key), ", D type ", std::get<10>(key),
         ", alignments ", std::get<11>(key), "/", std::get<12>(key), "/", std::get<13>(key),
         " bytes)");
  return plans_.emplace(key, plan).first->second;
}

void CublasLtMatmul::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          const void* a, cudaDataType_t a_type, int64_t lda, const void* b,
                          cudaDataType_t b_type, int64_t ldb, void* d, cudaDataType_t d_type,
                          int64_t ldd, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: D = beta D
    if (beta == 0.0f)
      MEAP_CUDA_CHECK(cudaMemsetAsync(d, 0, static_cast<size_t>(m * n) * element_size(d_type),
                                      stream_));
    return;
  }
  const Key key{trans_a, trans_b, m, n, k, lda, ldb, ldd, static_cast<int>(a_type),
                static_cast<int>(b_type), static_cast<int>(d_type), alignment_of(a),
                alignment_of(b), alignment_of(d)};
  const Plan& plan = plan_for(key);
  const float alpha = 1.0f;
  MEAP_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d,
                                   plan.d, d, plan.d, &plan.algo, workspace_, kWorkspaceBytes,
                                   stream_));
}

void CublasLtMatmul::forward(void* out, const void* x, const void* w, int64_t n, int64_t ic,
                             int64_t oc, cudaDataType_t act) {
  gemm(true, false, oc, n, ic, w, act, ic, x, act, ic, out, act, oc, 0.0f);
}

void CublasLtMatmul::backward_dx(void* dx, const void* dout, const void* w, int64_t n,
                                 int64_t ic, int64_t oc, cudaDataType_t act) {
  gemm(false, false, ic, n, oc, w, act, ic, dout, act, oc, dx, act, ic, 0.0f);
}

void CublasLtMatmul::backward_dw(float* dw, const void* dout, const void* x, int64_t n,
                                 int64_t ic, int64_t oc, cudaDataType_t act) {
  gemm(false, true, ic, oc, n, x, act, ic, dout, act, oc, dw, CUDA_R_32F, ic, 1.0f);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap::cuda
