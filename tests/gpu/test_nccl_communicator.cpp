// GPU tests of the NCCL communicator on one rank: f32 / f64 / bf16 all-reduce, the
// reduce-scatter / all-gather round trip (separate and in place), zero-length no-ops and
// the errors for host buffers. Without NCCL, CUDA or a GPU they report that they skipped.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/dist/communicator.hpp"
#include "meap/core/rng.hpp"

#if defined(MEAP_WITH_NCCL) && defined(MEAP_WITH_MPI)
#include "cuda_check.hpp"
#include "dist/nccl_communicator.hpp"

namespace {

// A device buffer that frees itself (the test may fail half way).
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { MEAP_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1)); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

template <class T>
void upload(void* dst, const std::vector<T>& src) {
  MEAP_CUDA_CHECK(cudaMemcpy(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// The host copy is poisoned first, so a copy that did nothing cannot pass.
template <class T>
std::vector<T> download(const void* src, size_t n) {
  std::vector<T> out(n);
  std::memset(out.data(), 0xff, n * sizeof(T));
  MEAP_CUDA_CHECK(cudaMemcpy(out.data(), src, n * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}

template <class T>
bool bits_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// One rank, as a single process: no launcher variables, no MPI. Null (and a WARN) when the
// test cannot run here.
std::unique_ptr<meap::Communicator> one_rank_nccl() {
  if (!meap::cuda_available()) {
    WARN("SKIPPED: no CUDA GPU visible");
    return nullptr;
  }
  return meap::make_nccl_communicator(60.0, meap::RankInfo{});
}

constexpr int64_t kN = (1 << 20) + 37;  // not a multiple of any block or chunk size

}  // namespace
#endif

TEST_CASE("nccl all-reduce of f32, f64 and bf16 device buffers on one rank", "[gpu]") {
#if !defined(MEAP_WITH_NCCL) || !defined(MEAP_WITH_MPI)
  WARN("SKIPPED: this build has no NCCL communicator (needs CUDA, NCCL and MPI)");
#else
  auto comm = one_rank_nccl();
  if (!comm) return;
  REQUIRE(comm->name() == "nccl");
  REQUIRE(comm->rank() == 0);
  REQUIRE(comm->world_size() == 1);

  std::vector<float> f(kN);
  std::vector<double> d(kN);
  std::vector<uint16_t> h(kN);
  for (int64_t i = 0; i < kN; ++i) {
    d[i] = meap::philox_normal(21, 0, i);
    f[i] = static_cast<float>(d[i]);
    h[i] = meap::f32_to_bf16(f[i]);
  }
  DeviceBuffer buf(kN * sizeof(double));

  // One rank: the sum over ranks is the input, bit for bit.
  upload(buf.p, f);
  comm->all_reduce_sum(meap::Tensor(buf.p, meap::DType::f32, meap::Device::cuda, {kN}),
                       "test f32 all-reduce");
  REQUIRE(bits_equal(download<float>(buf.p, kN), f));

  upload(buf.p, d);
  comm->all_reduce_sum(meap::Tensor(buf.p, meap::DType::f64, meap::Device::cuda, {kN}),
                       "test f64 all-reduce");
  REQUIRE(bits_equal(download<double>(buf.p, kN), d));

  upload(buf.p, h);
  comm->all_reduce_sum(meap::Tensor(buf.p, meap::DType::bf16, meap::Device::cuda, {kN}),
                       "test bf16 all-reduce");
  REQUIRE(bits_equal(download<uint16_t>(buf.p, kN), h));

  // Host values and the barrier go over the host side (the identity for one rank).
  double host[3] = {1.5, -2.0, 3.25};
  comm->all_reduce_sum(host, 3, "test host all-reduce");
  REQUIRE(host[0] == 1.5);
  REQUIRE(host[1] == -2.0);
  REQUIRE(host[2] == 3.25);
  comm->barrier("test barrier");
#endif
}

TEST_CASE("nccl reduce-scatter / all-gather round trip, separate and in place", "[gpu]") {
#if !defined(MEAP_WITH_NCCL) || !defined(MEAP_WITH_MPI)
  WARN("SKIPPED: this build has no NCCL communicator (needs CUDA, NCCL and MPI)");
#else
  auto comm = one_rank_nccl();
  if (!comm) return;
  const auto cuda = meap::Device::cuda;
  std::vector<float> x(kN);
  for (int64_t i = 0; i < kN; ++i) x[i] = static_cast<float>(meap::philox_normal(22, 0, i));
  DeviceBuffer full(kN * 4), shard(kN * 4);
  const meap::Tensor tfull(full.p, meap::DType::f32, cuda, {kN});
  const meap::Tensor tshard(shard.p, meap::DType::f32, cuda, {kN});

  // Separate buffers: the shard starts as NaN, the full buffer is NaN before the gather.
  upload(full.p, x);
  MEAP_CUDA_CHECK(cudaMemset(shard.p, 0xff, kN * 4));
  comm->reduce_scatter_sum(tfull, tshard, "test reduce-scatter");
  REQUIRE(bits_equal(download<float>(shard.p, kN), x));
  MEAP_CUDA_CHECK(cudaMemset(full.p, 0xff, kN * 4));
  comm->all_gather(tshard, tfull, "test all-gather");
  REQUIRE(bits_equal(download<float>(full.p, kN), x));

  // In place (the trainer's ZeRO-1 way): the shard is the view of full at rank * S.
  upload(full.p, x);
  comm->reduce_scatter_sum(tfull, tfull, "test in-place reduce-scatter");
  comm->all_gather(tfull, tfull, "test in-place all-gather");
  REQUIRE(bits_equal(download<float>(full.p, kN), x));

  // f64 and bf16 take the same path with their own element size.
  std::vector<uint16_t> hb(kN);
  for (int64_t i = 0; i < kN; ++i) hb[i] = meap::f32_to_bf16(x[i]);
  upload(full.p, hb);
  MEAP_CUDA_CHECK(cudaMemset(shard.p, 0xff, kN * 2));
  comm->reduce_scatter_sum(meap::Tensor(full.p, meap::DType::bf16, cuda, {kN}),
                           meap::Tensor(shard.p, meap::DType::bf16, cuda, {kN}),
                           "test bf16 reduce-scatter");
  REQUIRE(bits_equal(download<uint16_t>(shard.p, kN), hb));

  // A shard that is not 1 / world_size of the full buffer, or a dtype mismatch, is refused.
  REQUIRE_THROWS_AS(comm->reduce_scatter_sum(tfull, tfull.rows(0, kN - 1), "test bad shard"),
                    meap::Error);
  REQUIRE_THROWS_AS(comm->all_gather(meap::Tensor(shard.p, meap::DType::f64, cuda, {kN}), tfull,
                                     "test dtype mismatch"),
                    meap::Error);
#endif
}

TEST_CASE("nccl zero-length collectives are no-ops and host buffers are refused", "[gpu]") {
#if !defined(MEAP_WITH_NCCL) || !defined(MEAP_WITH_MPI)
  WARN("SKIPPED: this build has no NCCL communicator (needs CUDA, NCCL and MPI)");
#else
  auto comm = one_rank_nccl();
  if (!comm) return;
  const auto cuda = meap::Device::cuda;
  // A sentinel behind the empty view must survive every call.
  const std::vector<float> sentinel = {7.0f, -1.0f, 42.0f, 0.5f};
  DeviceBuffer buf(sentinel.size() * 4);
  upload(buf.p, sentinel);
  const meap::Tensor empty(buf.p, meap::DType::f32, cuda, {0});
  comm->all_reduce_sum(empty, "test empty all-reduce");
  comm->reduce_scatter_sum(empty, empty, "test empty reduce-scatter");
  comm->all_gather(empty, empty, "test empty all-gather");
  REQUIRE(bits_equal(download<float>(buf.p, sentinel.size()), sentinel));

  std::vector<float> host(16, 1.0f);
  const meap::Tensor on_host(host.data(), meap::DType::f32, meap::Device::cpu, {16});
  REQUIRE_THROWS_AS(comm->all_reduce_sum(on_host, "test host tensor"), meap::Error);
  REQUIRE_THROWS_AS(comm->all_reduce_sum(meap::Tensor(buf.p, meap::DType::i32, cuda, {4}),
                                         "test i32"),
                    meap::Error);
  // The communicator is still usable after refused arguments.
  comm->all_reduce_sum(meap::Tensor(buf.p, meap::DType::f32, cuda, {4}), "test after errors");
  REQUIRE(bits_equal(download<float>(buf.p, sentinel.size()), sentinel));
#endif
}
