// What the op table (tests/ops/test_backend_ops.cpp) cannot show through meap::Backend, on
// the host emulator (tests/cuda_emulator.hpp): the emulator's own rules (shared memory
// poisoned per CTA, CUDA's shuffle semantics, rejected launches and broken collectives), and
// the launchers' behaviour on inputs the contract leaves open -- token ids outside the
// vocabulary, a weighted target outside it, a shape the flash kernels have no instance for.
// The launchers are the real functions of kernels/*.cu, compiled for the emulator
// (meap_emulated_cuda). Needs no CUDA toolkit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

// The emulator first: it supplies the CUDA names, and the launchers' emulated declarations.
#include "cuda_emulator.hpp"

#include "attention.hpp"
#include "cross_entropy.hpp"
#include "embedding.hpp"

namespace {

namespace cd = meap::cuda::detail;
using meap::DType;
using meap::Tensor;

std::vector<float> randn(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(meap::philox_normal(seed, 0, i));
  return v;
}

Tensor host(void* p, DType dt, std::initializer_list<int64_t> dims) {
  return Tensor(p, dt, meap::Device::cpu, dims);
}

TEST_CASE("emulated embedding kernels: ids outside the vocabulary give NaN rows, are skipped",
          "[integration]") {
  const int64_t n = 300, v = 23, c = 70;
  std::vector<int32_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = static_cast<int32_t>((i * 7 + i / 5) % v);
  for (int64_t i = 5; i < n; i += 17) tokens[i] = -1;
  for (int64_t i = 7; i < n; i += 23) tokens[i] = static_cast<int32_t>(v);
  for (int64_t i = 3; i < n; i += 29) tokens[i] = static_cast<int32_t>(v + 3);
  const auto valid = [&](int64_t i) { return tokens[i] >= 0 && tokens[i] < v; };
  std::vector<float> table = randn(v * c, 1), out(n * c);
  meap::cuda::embedding_forward(out.data(), tokens.data(), table.data(), n, v, c, nullptr);
  bool as_documented = true;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      as_documented = as_documented && (valid(i) ? out[i * c + j] == table[tokens[i] * c + j]
                                                 : std::isnan(out[i * c + j]));
  CHECK(as_documented);

  // The backward against the CPU on the valid positions only, in order.
  const std::vector<float> dout = randn(n * c, 2);
  std::vector<float> dtable = randn(v * c, 3), ref = dtable, valid_dout;
  std::vector<int32_t> valid_tokens;
  for (int64_t i = 0; i < n; ++i)
    if (valid(i)) {
      valid_tokens.push_back(tokens[i]);
      valid_dout.insert(valid_dout.end(), dout.begin() + i * c, dout.begin() + (i + 1) * c);
    }
  std::vector<unsigned char> scratch(meap::cuda::embedding_backward_scratch_bytes(n, v));
  meap::cuda::embedding_backward(dtable.data(), dout.data(), tokens.data(), n, v, c,
                                 scratch.data(), scratch.size(), nullptr);
  const auto m = static_cast<int64_t>(valid_tokens.size());
  meap::make_backend(meap::DeviceChoice::cpu)->embedding_backward(host(ref.data(), DType::f32, {v, c}),
                                                host(valid_dout.data(), DType::f32, {m, c}),
                                                host(valid_tokens.data(), DType::i32, {m}));
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < v * c; ++i) {
    diff += (dtable[i] - ref[i]) * (dtable[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  CHECK(std::sqrt(diff / norm) <= 1e-5);
}

TEST_CASE("emulated cross-entropy: a weighted target outside the vocabulary gives NaN",
          "[integration]") {
  const int64_t n = 2, v = 70;
  const std::vector<float> logits = randn(n * v, 4);
  std::vector<int32_t> targets = {static_cast<int32_t>(v), 3};
  std::vector<float> weights = {1.0f, 1.0f}, losses(n), d(n * v);
  meap::cuda::cross_entropy_forward_backward(losses.data(), d.data(), logits.data(),
                                             targets.data(), weights.data(), n, v, 1.0, nullptr);
  CHECK(std::isnan(losses[0]));
  CHECK(std::all_of(d.begin(), d.begin() + v, [](float x) { return std::isnan(x); }));
  CHECK(std::isfinite(losses[1]));
  CHECK(std::all_of(d.begin() + v, d.end(), [](float x) { return std::isfinite(x); }));
}

TEST_CASE("emulated flash attention refuses shapes it has no kernel for", "[integration]") {
  for (const meap::cuda::AttentionShape& s :
       {meap::cuda::AttentionShape{1, 4, 2, 1, 96}, meap::cuda::AttentionShape{1, 4, 3, 2, 64}}) {
    CHECK_FALSE(meap::cuda::flash_attention_supports(s));
    CHECK_THROWS_AS(
        meap::cuda::flash_attention_forward(nullptr, nullptr, nullptr, nullptr, s, nullptr),
        meap::Error);
  }
}

// ---- the emulator itself -----------------------------------------------------------------------
// Block 0 writes a static __shared__ cell and a dynamic one; block 1 only reads them.
__global__ void shared_poison_kernel(float* out) {
  __shared__ float cell;
  float* dyn = cd::dynamic_shared<float>();
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    cell = 1.0f;
    dyn[0] = 2.0f;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    out[2 * blockIdx.x] = cell;
    out[2 * blockIdx.x + 1] = dyn[0];
  }
}

// Lane l of each warp: out[0..3] = xor 1, down 3, up 2, idx 7 shuffles of (warp * 100 + l).
__global__ void shuffle_kernel(int* out) {
  const int lane = threadIdx.x % 32, v = static_cast<int>(threadIdx.x / 32) * 100 + lane;
  int* o = out + 4 * threadIdx.x;
  o[0] = __shfl_xor_sync(0xffffffffu, v, 1);
  o[1] = __shfl_down_sync(0xffffffffu, v, 3);
  o[2] = __shfl_up_sync(0xffffffffu, v, 2);
  o[3] = __shfl_sync(0xffffffffu, v, 7);
}

__global__ void partial_mask_kernel(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.0f, 1);
}

__global__ void three_d_kernel(unsigned* out) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 1000 + thread;
}

TEST_CASE("the emulator poisons shared memory and follows CUDA's shuffle and launch rules",
          "[integration]") {
  std::vector<float> cells(4, 0.0f);
  emu::launch({2}, {64}, 16, [&] { shared_poison_kernel(cells.data()); });
  CHECK(cells[0] == 1.0f);
  CHECK(cells[1] == 2.0f);
  CHECK(std::isnan(cells[2]));  // block 1 never wrote them: poisoned again before it ran
  CHECK(std::isnan(cells[3]));

  std::vector<int> got(4 * 64, -7);
  emu::launch({1}, {64}, 0, [&] { shuffle_kernel(got.data()); });
  bool as_cuda = true;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, base = t / 32 * 100;
    as_cuda = as_cuda && got[4 * t] == base + (lane ^ 1) &&
              got[4 * t + 1] == base + (lane + 3 < 32 ? lane + 3 : lane) &&
              got[4 * t + 2] == base + (lane >= 2 ? lane - 2 : lane) &&
              got[4 * t + 3] == base + 7;
  }
  CHECK(as_cuda);

  std::vector<unsigned> ids(2 * 3 * 2 * 4 * 2 * 3, 0);
  emu::launch({2, 3, 2}, {4, 2, 3}, 0, [&] { three_d_kernel(ids.data()); });
  bool numbered = true;
  for (unsigned i = 0; i < ids.size(); ++i) numbered = numbered && ids[i] == i / 24 * 1000 + i % 24;
  CHECK(numbered);

  std::vector<float> sink(32);
  CHECK_THROWS_AS(emu::launch({1}, {32}, 0, [&] { partial_mask_kernel(sink.data()); }),
                  std::runtime_error);
  std::vector<int> sink48(4 * 48);  // a shuffle in a partial warp: the second warp has 16 threads
  CHECK_THROWS_AS(emu::launch({1}, {48}, 0, [&] { shuffle_kernel(sink48.data()); }),
                  std::runtime_error);
  CHECK_THROWS_AS(emu::launch({1}, {1025}, 0, [] {}), std::runtime_error);
  CHECK_THROWS_AS(emu::launch({1, 65536}, {32}, 0, [] {}), std::runtime_error);
}

TEST_CASE("the emulator rejects a kernel that breaks a collective", "[integration]") {
  // Lanes of one warp at different collectives: what a divergent ldmatrix or mma would be.
  REQUIRE_THROWS_AS(emu::launch({1}, {32}, 64,
                                [] {
                                  if (threadIdx.x % 2) {
                                    __syncwarp();
                                  } else {
                                    uint32_t r[4];
                                    emu::ldmatrix(r, emu::state().smem.data(), false);
                                  }
                                }),
                    std::runtime_error);
  // A barrier half the block never reaches.
  REQUIRE_THROWS_AS(emu::launch({1}, {64}, 0,
                                [] {
                                  if (threadIdx.x < 32) __syncthreads();
                                }),
                    std::runtime_error);
}

}  // namespace
