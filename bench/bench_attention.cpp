// Benchmark of the flash-attention kernels (kernels/attention.hpp), forward and backward, at head
// dims 64 and 128 and T = 512 .. 4096 with a fixed token count B * T (default 16384),
// Hq = 16, Hkv = 4. Each call is timed with CUDA events after warm-up; the median is reported.
// FLOP convention (causal, so half the T x T scores): forward = 2 matmuls x 2 B Hq T^2 D / 2
// = 2 B Hq T^2 D; backward = 2.5 x forward; forward + backward = 3.5 x forward. Our backward
// recomputes more than that (the dQ kernel redoes S and dP), but the count stays the same so
// the numbers compare with bench/attention_sdpa.py.
//
// Prints one JSON line per shape on stdout (bench/attention.sh joins them with PyTorch's) and
// a readable table on stderr.
//   bench_attention [--tokens N] [--heads Hq] [--kv-heads Hkv] [--warmup N] [--iters N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "attention.hpp"
#include "cuda_check.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/dtype.hpp"
#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"

namespace {

struct Options {
  int64_t tokens = 16384, heads = 16, kv_heads = 4;
  int warmup = 5, iters = 20;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) meap::fail("missing value after ", a);
    const long long v = std::atoll(argv[++i]);
    if (v <= 0) meap::fail(a, " needs a positive number");
    if (a == "--tokens") o.tokens = v;
    else if (a == "--heads") o.heads = v;
    else if (a == "--kv-heads") o.kv_heads = v;
    else if (a == "--warmup") o.warmup = static_cast<int>(v);
    else if (a == "--iters") o.iters = static_cast<int>(v);
    else meap::fail("unknown option ", a, " (--tokens, --heads, --kv-heads, --warmup, --iters)");
  }
  return o;
}

// Median milliseconds of `iters` calls of fn (after `warmup` untimed ones), each bracketed by
// CUDA events on the default stream.
template <class Fn>
double median_ms(const Options& o, Fn fn) {
  for (int i = 0; i < o.warmup; ++i) fn();
  cudaEvent_t start, stop;
  MEAP_CUDA_CHECK(cudaEventCreate(&start));
  MEAP_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(o.iters);
  for (int i = 0; i < o.iters; ++i) {
    MEAP_CUDA_CHECK(cudaEventRecord(start, nullptr));
    fn();
    MEAP_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    MEAP_CUDA_CHECK(cudaEventSynchronize(stop));
    MEAP_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  MEAP_CUDA_CHECK(cudaEventDestroy(start));
  MEAP_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  MEAP_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  if (!meap::cuda_available()) {
    std::fprintf(stderr, "bench_attention: no CUDA GPU visible\n");
    return 2;
  }
  cudaDeviceProp prop{};
  MEAP_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int64_t h_total = o.heads + 2 * o.kv_heads;
  const int64_t max_d = 128;

  // One set of buffers at the largest size (B * T = tokens for every T), random bf16 values.
  const int64_t n_qkv = o.tokens * h_total * max_d, n_out = o.tokens * o.heads * max_d;
  std::vector<uint16_t> host(std::max(n_qkv, n_out));
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = meap::f32_to_bf16(static_cast<float>(meap::philox_normal(7, 0, i)));
  auto* qkv = static_cast<uint16_t*>(device_alloc(n_qkv * 2));
  auto* dqkv = static_cast<uint16_t*>(device_alloc(n_qkv * 2));
  auto* out = static_cast<uint16_t*>(device_alloc(n_out * 2));
  auto* dout = static_cast<uint16_t*>(device_alloc(n_out * 2));
  auto* lse = static_cast<float*>(device_alloc(o.tokens * o.heads * 4));
  MEAP_CUDA_CHECK(cudaMemcpy(qkv, host.data(), n_qkv * 2, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemcpy(dout, host.data(), n_out * 2, cudaMemcpyHostToDevice));
  size_t ws_bytes = 0;
  for (int64_t t : {512, 1024, 2048, 4096})
    ws_bytes = std::max(ws_bytes, meap::cuda::flash_attention_backward_workspace_bytes(
                                      {o.tokens / t, t, o.heads, o.kv_heads, max_d}));
  void* workspace = device_alloc(ws_bytes);

  std::fprintf(stderr, "%s, B*T = %lld, Hq = %lld, Hkv = %lld, median of %d after %d warm-up\n",
               prop.name, static_cast<long long>(o.tokens), static_cast<long long>(o.heads),
               static_cast<long long>(o.kv_heads), o.iters, o.warmup);
  std::fprintf(stderr, "%4s %5s %4s %10s %10s %10s %10s\n", "D", "T", "B", "fwd ms", "fwd TF/s",
               "bwd ms", "bwd TF/s");
  for (int64_t d : {64, 128})
    for (int64_t t : {512, 1024, 2048, 4096}) {
      const int64_t b = o.tokens / t;
      if (b < 1) continue;
      const meap::cuda::AttentionShape shape{b, t, o.heads, o.kv_heads, d};
      // Forward once first so the backward reads a real out and lse.
      meap::cuda::flash_attention_forward(out, lse, qkv, nullptr, shape, nullptr);
      const double fwd_ms = median_ms(o, [&] {
        meap::cuda::flash_attention_forward(out, lse, qkv, nullptr, shape, nullptr);
      });
      const double bwd_ms = median_ms(o, [&] {
        meap::cuda::flash_attention_backward(dqkv, dout, qkv, out, lse, nullptr, workspace, shape,
                                             nullptr);
      });
      MEAP_CUDA_CHECK(cudaDeviceSynchronize());
      const double fwd_flop = 2.0 * b * o.heads * static_cast<double>(t) * t * d;
      const double fwd_tf = fwd_flop / (fwd_ms * 1e-3) / 1e12;
      const double bwd_tf = 2.5 * fwd_flop / (bwd_ms * 1e-3) / 1e12;
      const double both_tf = 3.5 * fwd_flop / ((fwd_ms + bwd_ms) * 1e-3) / 1e12;
      std::fprintf(stderr, "%4lld %5lld %4lld %10.3f %10.1f %10.3f %10.1f\n",
                   static_cast<long long>(d), static_cast<long long>(t),
                   static_cast<long long>(b), fwd_ms, fwd_tf, bwd_ms, bwd_tf);
      std::printf(
          "{\"impl\": \"meap\", \"device\": \"%s\", \"head_dim\": %lld, \"seq_len\": %lld, "
          "\"batch\": %lld, \"n_heads\": %lld, \"n_kv_heads\": %lld, \"fwd_ms\": %.4f, "
          "\"fwd_tflops\": %.2f, \"bwd_ms\": %.4f, \"bwd_tflops\": %.2f, \"fwd_bwd_ms\": %.4f, "
          "\"fwd_bwd_tflops\": %.2f}\n",
          prop.name, static_cast<long long>(d), static_cast<long long>(t),
          static_cast<long long>(b), static_cast<long long>(o.heads),
          static_cast<long long>(o.kv_heads), fwd_ms, fwd_tf, bwd_ms, bwd_tf, fwd_ms + bwd_ms,
          both_tf);
      std::fflush(stdout);
    }
  for (void* p : {static_cast<void*>(qkv), static_cast<void*>(dqkv), static_cast<void*>(out),
                  static_cast<void*>(dout), static_cast<void*>(lse), workspace})
    cudaFree(p);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_attention: %s\n", e.what());
  return 1;
}
