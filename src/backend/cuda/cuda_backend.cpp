// CudaBackend: checks each op's devices, dtypes and shapes (the CPU backend's checks plus the
// precision rules of meap/backend.hpp), then launches the kernels of kernels/*.cu or the
// cuBLASLt GEMMs on the backend's stream.
#include "cuda_backend.hpp"

#include <initializer_list>
#include <type_traits>

#include "attention.hpp"
#include "attention_reference.hpp"
#include "cast.hpp"
#include "cross_entropy.hpp"
#include "cublaslt_matmul.hpp"
#include "cuda_check.hpp"
#include "elementwise.hpp"
#include "embedding.hpp"
#include "optimizer.hpp"
#include "rmsnorm.hpp"
#include "rope.hpp"
#include "swiglu.hpp"

namespace meap {

namespace {

// Every tensor of an op lives on the GPU (empty optional tensors are skipped).
void require_device(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (!t->empty() && t->device != Device::cuda)
      fail("cuda ", op, ": a tensor of shape ", t->shape_string(),
           " is in host memory; the CUDA backend's ops take device tensors");
}

// The storage dtype S of an op (f32 or bf16), shared by every tensor listed.
DType storage_dtype(const char* op, std::initializer_list<const Tensor*> ts) {
  const DType dt = (*ts.begin())->dtype;
  if (dt != DType::f32 && dt != DType::bf16)
    fail("cuda ", op, ": activations and weights must be F32 or BF16, got ", dtype_name(dt),
         " (F64 runs on the CPU backend only)");
  for (const Tensor* t : ts)
    if (t->dtype != dt)
      fail("cuda ", op, ": mixed dtypes ", dtype_name(dt), " and ", dtype_name(t->dtype),
           " where one storage dtype is expected");
  return dt;
}

void require_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  if (t.dtype != want)
    fail("cuda ", op, ": ", what, " must be ", dtype_name(want), ", got ", dtype_name(t.dtype));
}

// Calls fn with a typed null pointer selecting the kernel instance: float* (f32) or
// uint16_t* (bf16 bits).
template <class Fn>
void dispatch(DType dt, Fn&& fn) {
  if (dt == DType::f32)
    fn(static_cast<float*>(nullptr));
  else
    fn(static_cast<uint16_t*>(nullptr));
}

template <class S>
S* ptr(const Tensor& t) {
  return t.as<S>();
}

cudaDataType_t cuda_type(DType dt) { return dt == DType::f32 ? CUDA_R_32F : CUDA_R_16BF; }

}  // namespace

CudaBackend::CudaBackend() {
  if (!cuda_available())
    fail("the CUDA backend needs a CUDA GPU, but none is visible (check nvidia-smi and "
         "CUDA_VISIBLE_DEVICES)");
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
  if (major == 9 && minor == 0 && sms == 132) return bf16 ? 989e12 : 67e12;   // H100 SXM, H200
  if (major == 9 && minor == 0 && sms == 114) return bf16 ? 756e12 : 51e12;   // H100 PCIe
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
  require_device("copy_from_host", {&dst});
  if (dst.nbytes() == 0) return;
  MEAP_CUDA_CHECK(
      cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* host, const Tensor& src) {
  require_device("copy_to_host", {&src});
  if (src.nbytes() == 0) return;
  MEAP_CUDA_CHECK(
      cudaMemcpyAsync(host, src.data, src.nbytes(), cudaMemcpyDeviceToHost, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::fill_zero(const Tensor& t) {
  require_device("fill_zero", {&t});
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

void CudaBackend::cast(const Tensor& dst, const Tensor& src) {
  require_device("cast", {&dst, &src});
  const int64_t n = src.numel();
  if (dst.numel() != n)
    fail("cuda cast: ", src.shape_string(), " into ", dst.shape_string(),
         " (the element counts differ)");
  if (dst.dtype == src.dtype) {
    if (src.nbytes())
      MEAP_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice,
                                      stream_));
  } else if (src.dtype == DType::f32 && dst.dtype == DType::bf16) {
    cuda::cast_f32_to_bf16(dst.as<uint16_t>(), src.as<float>(), n, stream_);
  } else if (src.dtype == DType::bf16 && dst.dtype == DType::f32) {
    cuda::cast_bf16_to_f32(dst.as<float>(), src.as<uint16_t>(), n, stream_);
  } else {
    fail("cast from ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype),
         " is not supported on the CUDA backend (F32 <-> BF16 only; F64 lives on the CPU)");
  }
}

// ---- embedding ---------------------------------------------------------------------------

void CudaBackend::embedding_forward(const Tensor& out, const Tensor& tokens,
                                    const Tensor& table) {
  const char* op = "embedding_forward";
  require_device(op, {&out, &tokens, &table});
  const DType dt = storage_dtype(op, {&table, &out});
  require_dtype(op, "tokens", tokens, DType::i32);
  const int64_t n = tokens.numel(), v = table.dim(0), c = table.dim(-1);
  if (table.ndim != 2 || out.numel() != n * c)
    fail("cuda ", op, ": table ", table.shape_string(), ", tokens ", tokens.shape_string(),
         ", out ", out.shape_string(), " do not match (out must be (N, C))");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::embedding_forward(ptr<S>(out), tokens.as<int32_t>(), ptr<S>(table), n, v, c, stream_);
  });
}

void CudaBackend::embedding_backward(const Tensor& dtable, const Tensor& dout,
                                     const Tensor& tokens) {
  const char* op = "embedding_backward";
  require_device(op, {&dtable, &dout, &tokens});
  const DType dt = storage_dtype(op, {&dout});
  require_dtype(op, "dtable (a weight gradient)", dtable, DType::f32);
  require_dtype(op, "tokens", tokens, DType::i32);
  const int64_t n = tokens.numel(), v = dtable.dim(0), c = dtable.dim(-1);
  if (dtable.ndim != 2 || dout.numel() != n * c)
    fail("cuda ", op, ": dtable ", dtable.shape_string(), ", tokens ", tokens.shape_string(),
         ", dout ", dout.shape_string(), " do not match");
  const size_t bytes = cuda::embedding_backward_scratch_bytes(n, v);
  void* work = scratch(bytes);
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::embedding_backward(dtable.as<float>(), ptr<S>(dout), tokens.as<int32_t>(), n, v, c,
                             work, bytes, stream_);
  });
}

// ---- RMSNorm -----------------------------------------------------------------------------

void CudaBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                  const Tensor& weight, double eps) {
  const char* op = "rmsnorm_forward";
  require_device(op, {&out, &rstd, &x, &weight});
  const DType dt = storage_dtype(op, {&x, &out, &weight});
  require_dtype(op, "rstd", rstd, DType::f32);
  const int64_t c = weight.numel(), n = c > 0 ? x.numel() / c : 0;
  if (c == 0 || x.numel() != n * c || out.numel() != n * c || rstd.numel() != n)
    fail("cuda ", op, ": x ", x.shape_string(), ", weight ", weight.shape_string(), ", out ",
         out.shape_string(), ", rstd ", rstd.shape_string(), " do not match");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::rmsnorm_forward(ptr<S>(out), rstd.as<float>(), ptr<S>(x), ptr<S>(weight), n, c, eps,
                          stream_);
  });
}

void CudaBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout,
                                   const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  require_device(op, {&dx, &dweight, &dout, &x, &weight, &rstd});
  const DType dt = storage_dtype(op, {&x, &dx, &dout, &weight});
  require_dtype(op, "dweight (a weight gradient)", dweight, DType::f32);
  require_dtype(op, "rstd", rstd, DType::f32);
  const int64_t c = weight.numel(), n = c > 0 ? x.numel() / c : 0;
  if (c == 0 || x.numel() != n * c || dx.numel() != n * c || dout.numel() != n * c ||
      rstd.numel() != n || dweight.numel() != c)
    fail("cuda ", op, ": x ", x.shape_string(), ", weight ", weight.shape_string(), ", dx ",
         dx.shape_string(), ", dout ", dout.shape_string(), ", dweight ",
         dweight.shape_string(), ", rstd ", rstd.shape_string(), " do not match");
  const size_t bytes = cuda::rmsnorm_backward_scratch_bytes(n, c);
  void* work = scratch(bytes);
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::rmsnorm_backward(ptr<S>(dx), dweight.as<float>(), ptr<S>(dout), ptr<S>(x),
                           ptr<S>(weight), rstd.as<float>(), n, c, work, bytes, stream_);
  });
}

// ---- linear ------------------------------------------------------------------------------

void CudaBackend::matmul_forward(const Tensor& out, const Tensor& x, const Tensor& w) {
  const char* op = "matmul_forward";
  require_device(op, {&out, &x, &w});
  const DType dt = storage_dtype(op, {&x, &w, &out});
  const int64_t oc = w.dim(0), ic = w.dim(1), n = ic > 0 ? x.numel() / ic : 0;
  if (w.ndim != 2 || ic == 0 || x.numel() != n * ic || out.numel() != n * oc)
    fail("cuda ", op, ": x ", x.shape_string(), " w ", w.shape_string(), " out ",
         out.shape_string(), " (expected x (N, IC), w (OC, IC), out (N, OC))");
  matmul_->forward(out.data, x.data, w.data, n, ic, oc, cuda_type(dt));
}

void CudaBackend::matmul_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                  const Tensor& x, const Tensor& w) {
  const char* op = "matmul_backward";
  require_device(op, {&dx, &dw, &dout, &x, &w});
  const DType dt = storage_dtype(op, {&x, &w, &dout});
  require_dtype(op, "dw (a weight gradient)", dw, DType::f32);
  if (!dx.empty()) require_dtype(op, "dx", dx, dt);
  const int64_t oc = w.dim(0), ic = w.dim(1), n = ic > 0 ? x.numel() / ic : 0;
  if (w.ndim != 2 || ic == 0 || x.numel() != n * ic || dout.numel() != n * oc ||
      dw.numel() != oc * ic || (!dx.empty() && dx.numel() != n * ic))
    fail("cuda ", op, ": x ", x.shape_string(), " w ", w.shape_string(), " dout ",
         dout.shape_string(), " dw ", dw.shape_string(), " dx ", dx.shape_string(),
         " do not match");
  if (!dx.empty()) matmul_->backward_dx(dx.data, dout.data, w.data, n, ic, oc, cuda_type(dt));
  matmul_->backward_dw(dw.as<float>(), dout.data, x.data, n, ic, oc, cuda_type(dt));
}

// ---- rotary embedding ----------------------------------------------------------------------

void CudaBackend::rope_forward(const Tensor& x, int n_rot_heads, const Tensor& cos,
                               const Tensor& sin) {
  rope("rope_forward", x, n_rot_heads, cos, sin, false);
}

void CudaBackend::rope_backward(const Tensor& dx, int n_rot_heads, const Tensor& cos,
                                const Tensor& sin) {
  rope("rope_backward", dx, n_rot_heads, cos, sin, true);
}

void CudaBackend::rope(const char* op, const Tensor& x, int n_rot_heads, const Tensor& cos,
                       const Tensor& sin, bool inverse) {
  require_device(op, {&x, &cos, &sin});
  const DType dt = storage_dtype(op, {&x});
  require_dtype(op, "cos", cos, DType::f32);
  require_dtype(op, "sin", sin, DType::f32);
  if (x.ndim != 4 || n_rot_heads < 0 || n_rot_heads > x.dim(2))
    fail("cuda ", op, ": expects x (B, T, H, D) and 0 <= n_rot_heads <= H, got x ",
         x.shape_string(), " and ", n_rot_heads, " heads");
  const int64_t b = x.dim(0), t = x.dim(1), h = x.dim(2), d = x.dim(3);
  if (d % 2 != 0 || cos.numel() < t * d / 2 || sin.numel() < t * d / 2)
    fail("cuda ", op, ": head dim ", d, " must be even and the tables (T, D/2) hold ",
         cos.numel(), " and ", sin.numel(), " entries for T = ", t);
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::rope_apply(ptr<S>(x), cos.as<float>(), sin.as<float>(), b, t, h, n_rot_heads, d,
                     inverse, stream_);
  });
}

// ---- attention -----------------------------------------------------------------------------

bool CudaBackend::use_flash_attention(DType storage, const cuda::AttentionShape& shape) const {
  // The flash kernels (kernels/attention.hpp) run bf16 with head dims 64 and 128; fp32 and
  // other head dims stay on the reference kernels.
  return storage == DType::bf16 && cuda::flash_attention_supports(shape);
}

void CudaBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                    int n_heads, int n_kv_heads) {
  const char* op = "attention_forward";
  require_device(op, {&out, &lse, &qkv});
  const DType dt = storage_dtype(op, {&qkv, &out});
  require_dtype(op, "lse", lse, DType::f32);
  if (qkv.ndim != 4 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 ||
      qkv.dim(2) != n_heads + 2 * n_kv_heads)
    fail("cuda ", op, ": qkv ", qkv.shape_string(), " is not (B, T, ", n_heads, " + 2 x ",
         n_kv_heads, ", D) with the query heads a multiple of the kv heads");
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  if (out.numel() != b * t * n_heads * d || lse.numel() != b * n_heads * t)
    fail("cuda ", op, ": out ", out.shape_string(), " or lse ", lse.shape_string(),
         " does not match qkv ", qkv.shape_string());
  const cuda::AttentionShape shape{b, t, n_heads, n_kv_heads, d};
  if (use_flash_attention(dt, shape)) {
    cuda::flash_attention_forward(ptr<uint16_t>(out), lse.as<float>(), ptr<uint16_t>(qkv), shape,
                                  stream_);
    return;
  }
  if (d > cuda::kAttentionReferenceMaxHeadDim)
    fail("cuda ", op, ": head dim ", d, " is larger than the kernels support (",
         cuda::kAttentionReferenceMaxHeadDim, ")");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::attention_reference_forward(ptr<S>(out), lse.as<float>(), ptr<S>(qkv), b, t, n_heads,
                                      n_kv_heads, static_cast<int>(d), stream_);
  });
}

void CudaBackend::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                     const Tensor& out, const Tensor& lse, int n_heads,
                                     int n_kv_heads) {
  const char* op = "attention_backward";
  require_device(op, {&dqkv, &dout, &qkv, &out, &lse});
  const DType dt = storage_dtype(op, {&qkv, &dqkv, &dout, &out});
  require_dtype(op, "lse", lse, DType::f32);
  if (qkv.ndim != 4 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 ||
      qkv.dim(2) != n_heads + 2 * n_kv_heads || dqkv.numel() != qkv.numel())
    fail("cuda ", op, ": qkv ", qkv.shape_string(), " / dqkv ", dqkv.shape_string(),
         " are not (B, T, ", n_heads, " + 2 x ", n_kv_heads, ", D)");
  const int64_t b = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(3);
  if (out.numel() != b * t * n_heads * d || dout.numel() != out.numel() ||
      lse.numel() != b * n_heads * t)
    fail("cuda ", op, ": out ", out.shape_string(), ", dout ", dout.shape_string(), " or lse ",
         lse.shape_string(), " does not match qkv ", qkv.shape_string());
  const cuda::AttentionShape shape{b, t, n_heads, n_kv_heads, d};
  if (use_flash_attention(dt, shape)) {
    void* work = scratch(cuda::flash_attention_backward_workspace_bytes(shape));
    cuda::flash_attention_backward(ptr<uint16_t>(dqkv), ptr<uint16_t>(dout), ptr<uint16_t>(qkv),
                                   ptr<uint16_t>(out), lse.as<float>(), work, shape, stream_);
    return;
  }
  if (d > cuda::kAttentionReferenceMaxHeadDim)
    fail("cuda ", op, ": head dim ", d, " is larger than the kernels support (",
         cuda::kAttentionReferenceMaxHeadDim, ")");
  const size_t bytes = cuda::attention_reference_backward_scratch_bytes(b, t, n_heads);
  void* work = scratch(bytes);
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::attention_reference_backward(ptr<S>(dqkv), ptr<S>(dout), ptr<S>(qkv), ptr<S>(out),
                                       lse.as<float>(), b, t, n_heads, n_kv_heads,
                                       static_cast<int>(d), work, bytes, stream_);
  });
}

// ---- SwiGLU, residual ------------------------------------------------------------------------

void CudaBackend::swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  const char* op = "swiglu_forward";
  require_device(op, {&out, &gate_up});
  const DType dt = storage_dtype(op, {&out, &gate_up});
  const int64_t f = out.dim(-1), n = f > 0 ? out.numel() / f : 0;
  if (f == 0 || gate_up.numel() != 2 * n * f)
    fail("cuda ", op, ": out ", out.shape_string(), " and gate_up ", gate_up.shape_string(),
         " are not (N, F) and (N, 2F)");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::swiglu_forward(ptr<S>(out), ptr<S>(gate_up), n, f, stream_);
  });
}

void CudaBackend::swiglu_backward(const Tensor& dgate_up, const Tensor& dout,
                                  const Tensor& gate_up) {
  const char* op = "swiglu_backward";
  require_device(op, {&dgate_up, &dout, &gate_up});
  const DType dt = storage_dtype(op, {&dout, &dgate_up, &gate_up});
  const int64_t f = dout.dim(-1), n = f > 0 ? dout.numel() / f : 0;
  if (f == 0 || gate_up.numel() != 2 * n * f || dgate_up.numel() != 2 * n * f)
    fail("cuda ", op, ": dout ", dout.shape_string(), ", gate_up ", gate_up.shape_string(),
         ", dgate_up ", dgate_up.shape_string(), " are not (N, F), (N, 2F), (N, 2F)");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::swiglu_backward(ptr<S>(dgate_up), ptr<S>(dout), ptr<S>(gate_up), n, f, stream_);
  });
}

void CudaBackend::add_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "add_forward";
  require_device(op, {&out, &a, &b});
  const DType dt = storage_dtype(op, {&out, &a, &b});
  if (out.numel() != a.numel() || a.numel() != b.numel())
    fail("cuda ", op, ": out ", out.shape_string(), ", a ", a.shape_string(), ", b ",
         b.shape_string(), " differ in size");
  if (out.numel() == 0) return;
  if (dt == DType::f32)
    cuda::add_f32(out.as<float>(), a.as<float>(), b.as<float>(), out.numel(), stream_);
  else
    cuda::add_bf16(out.as<uint16_t>(), a.as<uint16_t>(), b.as<uint16_t>(), out.numel(), stream_);
  MEAP_CUDA_CHECK_LAUNCH();
}

// ---- cross-entropy -------------------------------------------------------------------------

void CudaBackend::cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits,
                                                 const Tensor& logits, const Tensor& targets,
                                                 const Tensor& weights, double grad_scale) {
  const char* op = "cross_entropy_forward_backward";
  require_device(op, {&losses, &dlogits, &logits, &targets, &weights});
  const DType dt = storage_dtype(op, {&logits, &dlogits});
  require_dtype(op, "losses", losses, DType::f32);
  require_dtype(op, "targets", targets, DType::i32);
  require_dtype(op, "weights", weights, DType::f32);
  const int64_t v = logits.dim(-1), n = v > 0 ? logits.numel() / v : 0;
  if (v == 0 || targets.numel() != n || weights.numel() != n || losses.numel() != n ||
      dlogits.numel() != n * v)
    fail("cuda ", op, ": logits ", logits.shape_string(), ", dlogits ", dlogits.shape_string(),
         ", targets ", targets.shape_string(), ", weights ", weights.shape_string(),
         ", losses ", losses.shape_string(), " do not match");
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::cross_entropy_forward_backward(losses.as<float>(), ptr<S>(dlogits), ptr<S>(logits),
                                         targets.as<int32_t>(), weights.as<float>(), n, v,
                                         grad_scale, stream_);
  });
}

// ---- optimizer -------------------------------------------------------------------------------

double CudaBackend::sum_squares(const Tensor& t) {
  const char* op = "sum_squares";
  require_device(op, {&t});
  const DType dt = storage_dtype(op, {&t});
  const size_t bytes = cuda::sum_squares_scratch_bytes();
  void* work = scratch(bytes);
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::sum_squares(result_device_, ptr<S>(t), t.numel(), work, bytes, stream_);
  });
  MEAP_CUDA_CHECK(cudaMemcpyAsync(result_host_, result_device_, sizeof(double),
                                  cudaMemcpyDeviceToHost, stream_));
  MEAP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return *result_host_;
}

void CudaBackend::scale(const Tensor& t, double factor) {
  const char* op = "scale";
  require_device(op, {&t});
  const DType dt = storage_dtype(op, {&t});
  dispatch(dt, [&](auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    cuda::scale(ptr<S>(t), t.numel(), factor, stream_);
  });
}

void CudaBackend::adamw_update(const Tensor& param, const Tensor& grad, const Tensor& m,
                               const Tensor& v, const AdamWStep& hp,
                               const Tensor& working_copy) {
  const char* op = "adamw_update";
  require_device(op, {&param, &grad, &m, &v, &working_copy});
  for (const Tensor* t : {&param, &grad, &m, &v})
    require_dtype(op, "the master weights, gradients and moments", *t, DType::f32);
  const int64_t n = param.numel();
  if (grad.numel() != n || m.numel() != n || v.numel() != n)
    fail("cuda ", op, ": param ", param.shape_string(), ", grad ", grad.shape_string(), ", m ",
         m.shape_string(), ", v ", v.shape_string(), " differ in size");
  if (!working_copy.empty()) {
    require_dtype(op, "the working copy", working_copy, DType::bf16);
    if (working_copy.numel() != n)
      fail("cuda ", op, ": working copy ", working_copy.shape_string(), " is not the size of ",
           "the master ", param.shape_string());
  }
  cuda::adamw_update(param.as<float>(), grad.as<float>(), m.as<float>(), v.as<float>(),
                     working_copy.empty() ? nullptr : working_copy.as<uint16_t>(), n, hp.lr,
                     hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.step, stream_);
}

}  // namespace meap
