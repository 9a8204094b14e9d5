// GPU tests of the flash-attention kernels (kernels/attention.hpp) against the CPU backend:
// fresh random bf16 inputs, the f32 CPU reference on the same bf16-rounded values, every head
// dim x GQA ratio x sequence length (tile multiples and not), poisoned outputs, and bitwise
// repeatability of both passes. Without a GPU (or a CUDA build) they report that they skipped.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/dtype.hpp"
#include "meap/core/rng.hpp"

#ifdef MEAP_WITH_CUDA
#include "attention.hpp"
#include "backend/cuda/cuda_check.hpp"

namespace {

// A device buffer that frees itself (a failing CHECK must not leak it).
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { MEAP_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1)); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

template <class T>
std::vector<T> download(const void* src, size_t n) {
  std::vector<T> out(n);
  std::memset(out.data(), 0xff, n * sizeof(T));
  MEAP_CUDA_CHECK(cudaMemcpy(out.data(), src, n * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}

std::vector<float> to_f32(const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = meap::bf16_to_f32(h[i]);
  return f;
}

// Heads [h0, h1) of a (B, T, H, D) tensor, as one flat vector.
std::vector<float> heads(const std::vector<float>& x, int64_t bt, int64_t h_total, int64_t h0,
                         int64_t h1, int64_t d) {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(bt * (h1 - h0) * d));
  for (int64_t r = 0; r < bt; ++r)
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t i = 0; i < d; ++i) out.push_back(x[(r * h_total + h) * d + i]);
  return out;
}

// Normwise relative error ||got - ref|| / ||ref||. A reference that is (nearly) zero -- dQ and
// dK at T = 1 are exactly 0 -- is measured against an RMS floor of 1e-3 instead. NaN (an
// unwritten, poisoned element) propagates, and NaN <= tol fails.
double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  REQUIRE(got.size() == ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  const double floor = 1e-3 * std::sqrt(static_cast<double>(got.size()));
  return std::sqrt(diff) / std::max(std::sqrt(norm), floor);
}

template <class T>
bool bits_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// One shape: CPU reference, then the GPU forward and backward twice each.
void check_against_cpu(int64_t d, int64_t ratio, int64_t t, uint64_t seed) {
  const int64_t b = 2, hkv = 2, hq = hkv * ratio, ht = hq + 2 * hkv;
  const int64_t n_qkv = b * t * ht * d, n_out = b * t * hq * d, n_lse = b * hq * t;
  INFO("head_dim " << d << ", Hq " << hq << ", Hkv " << hkv << ", T " << t << ", B " << b);
  const meap::cuda::AttentionShape shape{b, t, hq, hkv, d};
  REQUIRE(meap::cuda::flash_attention_supports(shape));

  // bf16-rounded inputs; queries at twice the scale make the softmax peakier, so the
  // running max really moves between key tiles.
  std::vector<uint16_t> qkv_h(n_qkv), dout_h(n_out);
  for (int64_t i = 0; i < n_qkv; ++i) {
    const bool is_query = (i / d) % ht < hq;
    qkv_h[i] = meap::f32_to_bf16(
        static_cast<float>((is_query ? 2.0 : 1.0) * meap::philox_normal(seed, 0, i)));
  }
  for (int64_t i = 0; i < n_out; ++i)
    dout_h[i] = meap::f32_to_bf16(static_cast<float>(meap::philox_normal(seed, 1, i)));
  std::vector<float> qkv = to_f32(qkv_h), dout = to_f32(dout_h);

  // The reference: the CPU backend in f32 on the same values.
  std::vector<float> out_ref(n_out), lse_ref(n_lse), dqkv_ref(n_qkv);
  {
    auto cpu = meap::make_backend(meap::DeviceChoice::cpu);
    const auto f32 = meap::DType::f32;
    const auto host = meap::Device::cpu;
    const meap::Tensor tqkv(qkv.data(), f32, host, {b, t, ht, d});
    const meap::Tensor tout(out_ref.data(), f32, host, {b, t, hq, d});
    const meap::Tensor tlse(lse_ref.data(), f32, host, {b, hq, t});
    cpu->attention_forward(tout, tlse, tqkv, static_cast<int>(hq), static_cast<int>(hkv));
    cpu->attention_backward(meap::Tensor(dqkv_ref.data(), f32, host, {b, t, ht, d}),
                            meap::Tensor(dout.data(), f32, host, {b, t, hq, d}), tqkv, tout,
                            tlse, static_cast<int>(hq), static_cast<int>(hkv));
  }

  DeviceBuffer dqkv_in(n_qkv * 2), ddout(n_out * 2), dout_buf(n_out * 2), dlse(n_lse * 4),
      ddqkv(n_qkv * 2);
  const size_t ws_bytes = meap::cuda::flash_attention_backward_workspace_bytes(shape);
  REQUIRE(ws_bytes >= static_cast<size_t>(n_lse) * sizeof(float));
  DeviceBuffer workspace(ws_bytes);
  MEAP_CUDA_CHECK(cudaMemcpy(dqkv_in.p, qkv_h.data(), n_qkv * 2, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemcpy(ddout.p, dout_h.data(), n_out * 2, cudaMemcpyHostToDevice));

  // Forward twice, outputs poisoned (0xff bytes: NaN) before each run.
  std::vector<uint16_t> out_runs[2];
  std::vector<float> lse_runs[2];
  for (int run = 0; run < 2; ++run) {
    MEAP_CUDA_CHECK(cudaMemset(dout_buf.p, 0xff, n_out * 2));
    MEAP_CUDA_CHECK(cudaMemset(dlse.p, 0xff, n_lse * 4));
    meap::cuda::flash_attention_forward(dout_buf.as<uint16_t>(), dlse.as<float>(),
                                        dqkv_in.as<uint16_t>(), shape, nullptr);
    MEAP_CUDA_CHECK(cudaDeviceSynchronize());
    out_runs[run] = download<uint16_t>(dout_buf.p, n_out);
    lse_runs[run] = download<float>(dlse.p, n_lse);
  }
  CHECK(rel_error(to_f32(out_runs[0]), out_ref) <= 1e-2);
  CHECK(rel_error(lse_runs[0], lse_ref) <= 1e-4);
  CHECK(bits_equal(out_runs[0], out_runs[1]));
  CHECK(bits_equal(lse_runs[0], lse_runs[1]));

  // Backward twice from the GPU's own out and lse (as training does); dqkv and the workspace
  // poisoned before each run.
  std::vector<uint16_t> dqkv_runs[2];
  for (int run = 0; run < 2; ++run) {
    MEAP_CUDA_CHECK(cudaMemset(ddqkv.p, 0xff, n_qkv * 2));
    MEAP_CUDA_CHECK(cudaMemset(workspace.p, 0xff, ws_bytes));
    meap::cuda::flash_attention_backward(ddqkv.as<uint16_t>(), ddout.as<uint16_t>(),
                                         dqkv_in.as<uint16_t>(), dout_buf.as<uint16_t>(),
                                         dlse.as<float>(), workspace.p, shape, nullptr);
    MEAP_CUDA_CHECK(cudaDeviceSynchronize());
    dqkv_runs[run] = download<uint16_t>(ddqkv.p, n_qkv);
  }
  const std::vector<float> got = to_f32(dqkv_runs[0]);
  const int64_t bt = b * t;
  CHECK(rel_error(heads(got, bt, ht, 0, hq, d), heads(dqkv_ref, bt, ht, 0, hq, d)) <= 1e-2);
  CHECK(rel_error(heads(got, bt, ht, hq, hq + hkv, d), heads(dqkv_ref, bt, ht, hq, hq + hkv, d)) <=
        1e-2);
  CHECK(rel_error(heads(got, bt, ht, hq + hkv, ht, d), heads(dqkv_ref, bt, ht, hq + hkv, ht, d)) <=
        1e-2);
  CHECK(bits_equal(dqkv_runs[0], dqkv_runs[1]));
}

void check_head_dim(int64_t d) {
  if (!meap::cuda_available()) {
    WARN("SKIPPED: no CUDA GPU visible");
    return;
  }
  uint64_t seed = 1000 + static_cast<uint64_t>(d);
  for (int64_t ratio : {1, 2, 4})
    for (int64_t t : {1, 17, 100, 128, 257, 1000}) check_against_cpu(d, ratio, t, seed++);
}

}  // namespace
#endif

TEST_CASE("flash attention (head_dim 64) matches the CPU backend, forward and backward",
          "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  check_head_dim(64);
#endif
}

TEST_CASE("flash attention (head_dim 128) matches the CPU backend, forward and backward",
          "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  check_head_dim(128);
#endif
}

// Host-side only: needs the CUDA build, not a GPU.
TEST_CASE("flash attention refuses shapes it has no kernel for", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  using meap::cuda::AttentionShape;
  using meap::cuda::flash_attention_supports;
  CHECK(flash_attention_supports(AttentionShape{2, 100, 8, 2, 64}));
  CHECK(flash_attention_supports(AttentionShape{2, 100, 8, 2, 128}));
  CHECK_FALSE(flash_attention_supports(AttentionShape{2, 100, 8, 2, 32}));
  CHECK_FALSE(flash_attention_supports(AttentionShape{2, 100, 8, 2, 96}));
  CHECK_FALSE(flash_attention_supports(AttentionShape{2, 100, 8, 3, 64}));  // 3 does not divide 8
  CHECK_FALSE(flash_attention_supports(AttentionShape{2, 0, 8, 2, 64}));
  // Refused before anything is launched, so no GPU is needed to see the error.
  REQUIRE_THROWS_AS(meap::cuda::flash_attention_forward(nullptr, nullptr, nullptr,
                                                        AttentionShape{2, 100, 8, 2, 32}, nullptr),
                    meap::Error);
  REQUIRE_THROWS_AS(
      meap::cuda::flash_attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                           AttentionShape{2, 100, 8, 2, 32}, nullptr),
      meap::Error);
#endif
}
