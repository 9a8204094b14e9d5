// GPU tests of the elementwise kernels against the CPU backend. Without a GPU (or a
// CUDA build) they report that they skipped.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

#ifdef MEAP_WITH_CUDA
#include "backend/cuda/cuda_check.hpp"
#include "elementwise.hpp"
#endif

TEST_CASE("cuda add matches the CPU backend (fp32 and bf16)", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  if (!meap::cuda_available()) {
    WARN("SKIPPED: no CUDA GPU visible");
    return;
  }
  const int64_t n = 1 << 20 | 37;  // not a multiple of the block size
  std::vector<float> a(n), b(n), ref(n), got(n, NAN);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(meap::philox_normal(11, 0, i));
    b[i] = static_cast<float>(meap::philox_normal(11, 1, i));
  }
  auto cpu = meap::make_backend(meap::DeviceChoice::cpu);
  cpu->add_forward(meap::Tensor(ref.data(), meap::DType::f32, meap::Device::cpu, {n}),
                   meap::Tensor(a.data(), meap::DType::f32, meap::Device::cpu, {n}),
                   meap::Tensor(b.data(), meap::DType::f32, meap::Device::cpu, {n}));

  float *da, *db, *dout;
  MEAP_CUDA_CHECK(cudaMalloc(&da, n * 4));
  MEAP_CUDA_CHECK(cudaMalloc(&db, n * 4));
  MEAP_CUDA_CHECK(cudaMalloc(&dout, n * 4));
  MEAP_CUDA_CHECK(cudaMemcpy(da, a.data(), n * 4, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemcpy(db, b.data(), n * 4, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemset(dout, 0xff, n * 4));  // poison: NaN everywhere
  meap::cuda::add_f32(dout, da, db, n, nullptr);
  MEAP_CUDA_CHECK_LAUNCH();
  MEAP_CUDA_CHECK(cudaMemcpy(got.data(), dout, n * 4, cudaMemcpyDeviceToHost));
  for (int64_t i = 0; i < n; ++i) REQUIRE(got[i] == ref[i]);

  // bf16: inputs rounded to bf16, sum in fp32, rounded once.
  std::vector<uint16_t> ha(n), hb(n), hout(n);
  for (int64_t i = 0; i < n; ++i) {
    ha[i] = meap::f32_to_bf16(a[i]);
    hb[i] = meap::f32_to_bf16(b[i]);
  }
  auto* ua = reinterpret_cast<uint16_t*>(da);
  auto* ub = reinterpret_cast<uint16_t*>(db);
  auto* uo = reinterpret_cast<uint16_t*>(dout);
  MEAP_CUDA_CHECK(cudaMemcpy(ua, ha.data(), n * 2, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemcpy(ub, hb.data(), n * 2, cudaMemcpyHostToDevice));
  MEAP_CUDA_CHECK(cudaMemset(uo, 0xff, n * 2));
  meap::cuda::add_bf16(uo, ua, ub, n, nullptr);
  MEAP_CUDA_CHECK_LAUNCH();
  MEAP_CUDA_CHECK(cudaMemcpy(hout.data(), uo, n * 2, cudaMemcpyDeviceToHost));
  for (int64_t i = 0; i < n; ++i)
    REQUIRE(hout[i] == meap::f32_to_bf16(meap::bf16_to_f32(ha[i]) + meap::bf16_to_f32(hb[i])));
  cudaFree(da);
  cudaFree(db);
  cudaFree(dout);
#endif
}
