// CudaBackend: launches the kernels of kernels/*.cu or the cuBLASLt GEMMs on the backend's
// stream for each op Backend has checked (src/backend/backend.cpp).
#include "cuda_backend.hpp"

#include "attention.hpp"
#include "attention_reference.hpp"
#include "cast.hpp"
#include "cross_entropy.hpp"
#include "cublaslt_matmul.hpp"
#include "elementwise.hpp"
#include "embedding.hpp"
#include "optimizer.hpp"
#include "rmsnorm.hpp"
#include "rope.hpp"
#include "swiglu.hpp"

namespace meap {
inline namespace MEAP_CUDA_ABI {

namespace {

// Runs body with S the kernel instance's storage type: float (f32) or uint16_t (bf16 bits).
#define MEAP_CUDA_DISPATCH(dt, body) \
  do {                               \
    if ((dt) == DType::f32) {        \
      using S = float;               \
      body;                          \
    } else {                         \
      using S = uint16_t;            \
      body;                          \
    }                                \
  } while (0)

cudaDataType_t cuda_type(DType dt) { return dt == DType::f32 ? CUDA_R_32F : CUDA_R_16BF; }

}  // namespace

CudaBackend::CudaBackend() {
  MEAP_CUDA_CHECK(cudaGetDevice(&device_));
  // A blocking stream: it also orders with the legacy default stream that plain cudaMemcpy
  // (tests, other libraries) uses.
  MEAP_CUDA_CHECK(cudaStreamCreate(&stream_));
  matmul_ = std::make_unique<cuda::CublasLtMatmul>(stream_);
  MEAP_CUDA_CHECK(cudaMalloc(&result_device_, sizeof(double)));
  MEAP_CUDA_CHECK(cudaMallocHost(&result_host_, sizeof(double)));
}

CudaBackend::~CudaBackend() {
  // No throwing from a destructor: errors here are ignored (the process is usually ending).
  if (stream_) cudaStreamSynchronize(stream_);
  matmul_.reset();
  if (scratch_) cudaFree(scratch_);
  if (result_device_) cudaFree(result_device_);
  if (result_host_) cudaFreeHost(result_host_);
  if (stream_) cudaStreamDestroy(stream_);
}

double CudaBackend::peak_flops(DType compute) const {
  int major = 0, minor = 0, sms = 0, clock_khz = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_) != cudaSuccess ||
      cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device_) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const bool bf16 = compute == DType::bf16;
  // The datasheets' dense numbers (their boost clock is below the reported maximum clock).
  if (major == 9 && minor == 0 && sms == 132) return bf16 ? 989e12 : 67e12;    // H100 SXM, H200
  if (major == 9 && minor == 0 && sms == 114) return bf16 ? 756e12 : 51e12;    // H100 PCIe
  if (major == 8 && minor == 0 && sms == 108) return bf16 ? 312e12 : 19.5e12;  // A100
  // Otherwise per SM per clock: bf16 dense tensor-core FLOPs, fp32 FMA units x 2.
  double per_clock = 0;
  if (major == 9 && minor == 0) per_clock = bf16 ? 4096 : 256;
  if (major == 8 && minor == 0) per_clock = bf16 ? 2048 : 128;
  return per_clock * sms * clock_khz * 1e3;
}

// ---- memory ----------------------------------------------------------------------------

void* CudaBackend::allocate(size_t bytes) {
  void* p = nullptr;
  const cudaError_t st = cudaMalloc(&p, bytes ? bytes : 1);
  if (st != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail("out of GPU memory allocating ", bytes, " bytes (", free_bytes, " of ", total_bytes,
         " bytes free): ", cudaGetErrorString(st),
         "; lower train.micro_batch_size or data.seq_len");
  }
  return p;
}

void CudaBackend::deallocate(void* ptr) {
  if (!ptr) return;
  // Kernels still queued may use the memory: finish them first. Called from destructors
  // (Arena), so errors are not thrown: an earlier failure has been reported already.
  cudaStreamSynchronize(stream_);
  cudaFree(ptr);
}

void CudaBackend::copy_from_host(const Tensor& dst, const void* host) {
  if (dst.nbytes() == 0) return;
  MEAP_CUDA_CHECK(cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* host, const Tensor& src) {
  if (src.nbytes() == 0) return;
  MEAP_CUDA_CHECK(cudaMemcpyAsync(host, src.data, src.nbytes(), cudaMemcpyDeviceToHost, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::fill_zero(const Tensor& t) {
  if (t.nbytes() == 0) return;
  MEAP_CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.nbytes(), stream_));
}

void CudaBackend::synchronize() { MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBackend::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued kernels may use the old one
    if (scratch_) MEAP_CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    const size_t grown = (bytes + (size_t{1} << 20) - 1) / (size_t{1} << 20) * (size_t{1} << 20);
    scratch_ = allocate(grown);
    scratch_bytes_ = grown;
  }
  return scratch_;
}

void CudaBackend::do_cast(const Tensor& dst, const Tensor& src) {
  const int64_t n = src.numel();
  if (dst.dtype == src.dtype) {
    if (src.nbytes())
      MEAP_CUDA_CHECK(
          cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, stream_));
  } else if (dst.dtype == DType::bf16) {
    cuda::cast_f32_to_bf16(dst.as<uint16_t>(), src.as<float>(), n, stream_);
  } else {
    cuda::cast_bf16_to_f32(dst.as<float>(), src.as<uint16_t>(), n, stream_);
  }
}

// ---- embedding ---------------------------------------------------------------------------

void CudaBackend::do_embedding_forward(const Tensor& out, const Tensor& tokens,
                                       const Tensor& table) {
  const int64_t n = tokens.numel(), v = table.dim(0), c = table.dim(-1);
  MEAP_CUDA_DISPATCH(table.dtype, cuda::embedding_forward(out.as<S>(), tokens.as<int32_t>(),
                                                          table.as<S>(), n, v, c, stream_));
}

void CudaBackend::do_embedding_backward(const Tensor& dtable, const Tensor& dout,
                                        const Tensor& tokens) {
  const int64_t n = tokens.numel(), v = dtable.dim(0), c = dtable.dim(-1);
  const size_t bytes = cuda::embedding_backward_scratch_bytes(n, v);
  void* work = scratch(bytes);
  MEAP_CUDA_DISPATCH(
      dout.dtype, cuda::embedding_backward(dtable.as<float>(), dout.as<S>(), tokens.as<int32_t>(),
                                           n, v, c, work, bytes, stream_));
}

// ---- RMSNorm -----------------------------------------------------------------------------

void CudaBackend::do_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                     const Tensor& weight, double eps) {
  const int64_t c = weight.numel(), n = x.numel() / c;
  MEAP_CUDA_DISPATCH(x.dtype, cuda::rmsnorm_forward(out.as<S>(), rstd.as<float>(), x.as<S>(),
                                                    weight.as<S>(), n, c, eps, stream_));
}

void CudaBackend::do_rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                                      const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const int64_t c = weight.numel(), n = x.numel() / c;
  const size_t bytes = cuda::rmsnorm_backward_scratch_bytes(n, c);
  void* work = scratch(bytes);
  MEAP_CUDA_DISPATCH(x.dtype, cuda::rmsnorm_backward(dx.as<S>(), dweight.as<float>(), dout.as<S>(),
                                                     x.as<S>(), weight.as<S>(), rstd.as<float>(), n,
                                                     c, work, bytes, stream_));
}

// ---- linear ------------------------------------------------------------------------------

void CudaBackend::do_matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) {
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  matmul_->forward(out.data, x.data, w.data, n, ic, oc, cuda_type(x.dtype));
}

void CudaBackend::do_matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                     const Tensor& x, const Tensor& w) {
  const int64_t oc = w.dim(0), ic = w.dim(1), n = x.numel() / ic;
  if (!dx.empty()) matmul_->backward_dx(dx.data, dout.data, w.data, n, ic, oc, cuda_type(x.dtype));
  matmul_->backward_dw(dw.as<float>(), dout.data, x.data, n, ic, oc, cuda_type(x.dtype));
}

// ---- rotary embedding ----------------------------------------------------------------------

void CudaBackend::do_rope(const Tensor& x, int n_rot_heads, const Tensor& cos, const Tensor& sin,
                          const Tensor& positions, bool inverse) {
  const int64_t b = x.dim(0), t = x.dim(1), h = x.dim(2), d = x.dim(3);
  const int32_t* pos = positions.empty() ? nullptr : positions.as<int32_t>();
  MEAP_CUDA_DISPATCH(x.dtype, cuda::rope_apply(x.as<S>(), cos.as<float>(), sin.as<float>(), pos, b,
                                               t, h, n_rot_heads, d, inverse, stream_));
}

// ---- attention -----------------------------------------------------------------------------

bool CudaBackend::use_flash_attention(DType storage, const cuda::AttentionShape& shape) const {
  // The flash kernels (kernels/attention.hpp) run bf16 with head dims 64 and 128; fp32 and
  // other head dims stay on the reference kernels.
  return storage == DType::bf16 && cuda::flash_attention_supports(shape);
}

void CudaBackend::do_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                       int n_heads, int n_kv_heads, const Tensor& segments) {
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  const cuda::AttentionShape shape{b, t, n_heads, n_kv_heads, d};
  const int32_t* seg = segments.empty() ? nullptr : segments.as<int32_t>();
  if (use_flash_attention(qkv.dtype, shape))
    return cuda::flash_attention_forward(out.as<uint16_t>(), lse.as<float>(), qkv.as<uint16_t>(),
                                         seg, shape, stream_);
  MEAP_CUDA_DISPATCH(qkv.dtype, cuda::attention_reference_forward(
                                    out.as<S>(), lse.as<float>(), qkv.as<S>(), seg, b, t, n_heads,
                                    n_kv_heads, static_cast<int>(d), stream_));
}

void CudaBackend::do_attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                        const Tensor& out, const Tensor& lse, int n_heads,
                                        int n_kv_heads, const Tensor& segments) {
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  const cuda::AttentionShape shape{b, t, n_heads, n_kv_heads, d};
  const int32_t* seg = segments.empty() ? nullptr : segments.as<int32_t>();
  if (use_flash_attention(qkv.dtype, shape)) {
    void* work = scratch(cuda::flash_attention_backward_workspace_bytes(shape));
    return cuda::flash_attention_backward(dqkv.as<uint16_t>(), dout.as<uint16_t>(),
                                          qkv.as<uint16_t>(), out.as<uint16_t>(), lse.as<float>(),
                                          seg, work, shape, stream_);
  }
  const size_t bytes = cuda::attention_reference_backward_scratch_bytes(b, t, n_heads);
  void* work = scratch(bytes);
  MEAP_CUDA_DISPATCH(
      qkv.dtype, cuda::attention_reference_backward(
                     dqkv.as<S>(), dout.as<S>(), qkv.as<S>(), out.as<S>(), lse.as<float>(), seg, b,
                     t, n_heads, n_kv_heads, static_cast<int>(d), work, bytes, stream_));
}

// ---- SwiGLU, residual, cross-entropy ---------------------------------------------------------

void CudaBackend::do_swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  const int64_t f = out.dim(-1), n = out.numel() / f;
  MEAP_CUDA_DISPATCH(out.dtype, cuda::swiglu_forward(out.as<S>(), gate_up.as<S>(), n, f, stream_));
}

void CudaBackend::do_swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                                     const Tensor& gate_up) {
  const int64_t f = dout.dim(-1), n = dout.numel() / f;
  MEAP_CUDA_DISPATCH(dout.dtype, cuda::swiglu_backward(dgate_up.as<S>(), dout.as<S>(),
                                                       gate_up.as<S>(), n, f, stream_));
}

void CudaBackend::do_add_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  MEAP_CUDA_DISPATCH(out.dtype, cuda::add(out.as<S>(), a.as<S>(), b.as<S>(), out.numel(), stream_));
}

void CudaBackend::do_cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                                    const Tensor& logits, const Tensor& targets,
                                                    const Tensor& weights, double grad_scale) {
  const int64_t v = logits.dim(-1), n = logits.numel() / v;
  MEAP_CUDA_DISPATCH(logits.dtype,
                     cuda::cross_entropy_forward_backward(
                         losses.as<float>(), dlogits.as<S>(), logits.as<S>(), targets.as<int32_t>(),
                         weights.as<float>(), n, v, grad_scale, stream_));
}

// ---- optimizer (f32 only: Backend refuses bf16 here) ----------------------------------------

double CudaBackend::do_sum_squares(const Tensor& t) {
  const size_t bytes = cuda::sum_squares_scratch_bytes();
  cuda::sum_squares(result_device_, t.as<float>(), t.numel(), scratch(bytes), bytes, stream_);
  MEAP_CUDA_CHECK(cudaMemcpyAsync(result_host_, result_device_, sizeof(double),
                                  cudaMemcpyDeviceToHost, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return *result_host_;
}

void CudaBackend::do_scale(const Tensor& t, double factor) {
  cuda::scale(t.as<float>(), t.numel(), factor, stream_);
}

void CudaBackend::do_adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                                  const Tensor& v, const AdamWStep& hp,
                                  const Tensor& working_copy) {
  cuda::adamw_update(param.as<float>(), grad.as<float>(), m.as<float>(), v.as<float>(),
                     working_copy.empty() ? nullptr : working_copy.as<uint16_t>(), param.numel(),
                     hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.step, stream_);
}

}  // namespace MEAP_CUDA_ABI
}  // namespace meap
