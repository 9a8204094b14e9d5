// The flash-attention kernels' real source (kernels/attention_forward.cuh,
// attention_backward.cuh) run on the host emulator (tests/cuda_emulator.hpp) and compared with
// the CPU backend: tiling, causal masking, partial tiles, GQA, and the ldmatrix / mma fragment
// indexing are checked on every machine, GPU or not. What it cannot check -- the compiled
// PTX, real asynchrony of cp.async, timing -- is left to tests/gpu/test_flash_attention.cpp.
// Needs no CUDA toolkit. Small shapes: every CUDA thread is a coroutine here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/dtype.hpp"
#include "meap/core/rng.hpp"

// The emulator first: it supplies the CUDA names the kernel headers use.
#include "cuda_emulator.hpp"

#include "attention_backward.cuh"
#include "attention_forward.cuh"

namespace {

namespace attn = meap::cuda::attn;

struct Shape {
  int64_t b, t, hq, hkv, d;
};

__nv_bfloat16* bf(std::vector<uint16_t>& v) { return reinterpret_cast<__nv_bfloat16*>(v.data()); }
const __nv_bfloat16* bf(const std::vector<uint16_t>& v) {
  return reinterpret_cast<const __nv_bfloat16*>(v.data());
}

// The launch configurations of kernels/attention_forward.cu and attention_backward.cu.
template <int D>
void emulate_forward(std::vector<uint16_t>& out, std::vector<float>& lse,
                     const std::vector<uint16_t>& qkv, const Shape& s, emu::Order order) {
  const int T = static_cast<int>(s.t), Hq = static_cast<int>(s.hq), Hkv = static_cast<int>(s.hkv);
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(double{D})) * attn::kLog2e;
  emu::launch({static_cast<unsigned>((T + attn::kFwdRows - 1) / attn::kFwdRows),
               static_cast<unsigned>(Hq), static_cast<unsigned>(s.b)},
              {attn::kThreads}, attn::forward_smem_bytes<D>(), [&] {
                attn::flash_forward_kernel<D>(bf(out), lse.data(), bf(qkv), T, Hq, Hkv,
                                              scale_log2);
              },
              order);
}

template <int D>
void emulate_backward(std::vector<uint16_t>& dqkv, const std::vector<uint16_t>& dout,
                      const std::vector<uint16_t>& qkv, const std::vector<uint16_t>& out,
                      const std::vector<float>& lse, const Shape& s, emu::Order order) {
  const int T = static_cast<int>(s.t), Hq = static_cast<int>(s.hq), Hkv = static_cast<int>(s.hkv);
  const float scale = static_cast<float>(1.0 / std::sqrt(double{D}));
  const float scale_log2 = scale * attn::kLog2e;
  std::vector<float> delta(s.b * s.hq * s.t, NAN);
  const int64_t n_rows = s.b * s.t * s.hq;
  emu::launch({static_cast<unsigned>((n_rows * 32 + attn::kDeltaThreads - 1) / attn::kDeltaThreads)},
              {attn::kDeltaThreads}, 0, [&] {
                attn::attention_delta_kernel<D>(delta.data(), bf(dout), bf(out), n_rows, T, Hq);
              },
              order);
  const auto n_tiles = static_cast<unsigned>((T + attn::kBwdTile - 1) / attn::kBwdTile);
  emu::launch({n_tiles, static_cast<unsigned>(Hkv), static_cast<unsigned>(s.b)}, {attn::kThreads},
              attn::dkdv_smem_bytes<D>(), [&] {
                attn::attention_dkdv_kernel<D>(bf(dqkv), bf(dout), bf(qkv), lse.data(),
                                               delta.data(), T, Hq, Hkv, scale, scale_log2);
              },
              order);
  emu::launch({n_tiles, static_cast<unsigned>(Hq), static_cast<unsigned>(s.b)}, {attn::kThreads},
              attn::dq_smem_bytes<D>(), [&] {
                attn::attention_dq_kernel<D>(bf(dqkv), bf(dout), bf(qkv), lse.data(),
                                             delta.data(), T, Hq, Hkv, scale, scale_log2);
              },
              order);
}

std::vector<float> to_f32(const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = meap::bf16_to_f32(h[i]);
  return f;
}

// Heads [h0, h1) of a (B, T, H, D) tensor, flattened.
std::vector<float> heads(const std::vector<float>& x, int64_t bt, int64_t h_total, int64_t h0,
                         int64_t h1, int64_t d) {
  std::vector<float> out;
  for (int64_t r = 0; r < bt; ++r)
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t i = 0; i < d; ++i) out.push_back(x[(r * h_total + h) * d + i]);
  return out;
}

// ||got - ref|| / ||ref||, with an RMS floor of 1e-3 for (nearly) zero references; NaN fails.
double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  REQUIRE(got.size() == ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-3 * std::sqrt(double(got.size())));
}

template <int D>
void check_shape(const Shape& s, uint64_t seed) {
  INFO("head_dim " << s.d << ", Hq " << s.hq << ", Hkv " << s.hkv << ", T " << s.t << ", B "
                   << s.b);
  const int64_t ht = s.hq + 2 * s.hkv;
  const int64_t n_qkv = s.b * s.t * ht * s.d, n_out = s.b * s.t * s.hq * s.d,
                n_lse = s.b * s.hq * s.t;
  std::vector<uint16_t> qkv(n_qkv), dout(n_out);
  for (int64_t i = 0; i < n_qkv; ++i) {
    const bool is_query = (i / s.d) % ht < s.hq;
    qkv[i] = meap::f32_to_bf16(
        static_cast<float>((is_query ? 2.0 : 1.0) * meap::philox_normal(seed, 0, i)));
  }
  for (int64_t i = 0; i < n_out; ++i)
    dout[i] = meap::f32_to_bf16(static_cast<float>(meap::philox_normal(seed, 1, i)));

  std::vector<float> qkv_f = to_f32(qkv), dout_f = to_f32(dout);
  std::vector<float> out_ref(n_out), lse_ref(n_lse), dqkv_ref(n_qkv);
  auto cpu = meap::make_backend(meap::DeviceChoice::cpu);
  const auto f32 = meap::DType::f32;
  const auto host = meap::Device::cpu;
  const meap::Tensor tqkv(qkv_f.data(), f32, host, {s.b, s.t, ht, s.d});
  const meap::Tensor tout(out_ref.data(), f32, host, {s.b, s.t, s.hq, s.d});
  const meap::Tensor tlse(lse_ref.data(), f32, host, {s.b, s.hq, s.t});
  cpu->attention_forward(tout, tlse, tqkv, static_cast<int>(s.hq), static_cast<int>(s.hkv));
  cpu->attention_backward(meap::Tensor(dqkv_ref.data(), f32, host, {s.b, s.t, ht, s.d}),
                          meap::Tensor(dout_f.data(), f32, host, {s.b, s.t, s.hq, s.d}), tqkv,
                          tout, tlse, static_cast<int>(s.hq), static_cast<int>(s.hkv));

  // Both schedules (warp 0 racing ahead, the last warp racing ahead) must give the reference
  // and the same bits: the threads' arithmetic is fixed, only a race could change it.
  std::vector<uint16_t> first_out, first_dqkv;
  for (emu::Order order : {emu::Order::first_warp_first, emu::Order::last_warp_first}) {
    INFO((order == emu::Order::first_warp_first ? "warp 0 first" : "last warp first"));
    // Outputs start as NaN: an element the kernels never write fails the comparison.
    std::vector<uint16_t> out(n_out, 0xffff), dqkv(n_qkv, 0xffff);
    std::vector<float> lse(n_lse, NAN);
    emulate_forward<D>(out, lse, qkv, s, order);
    CHECK(rel_error(to_f32(out), out_ref) <= 1e-2);
    CHECK(rel_error(lse, lse_ref) <= 1e-4);

    emulate_backward<D>(dqkv, dout, qkv, out, lse, s, order);
    const std::vector<float> got = to_f32(dqkv);
    const int64_t bt = s.b * s.t;
    CHECK(rel_error(heads(got, bt, ht, 0, s.hq, s.d), heads(dqkv_ref, bt, ht, 0, s.hq, s.d)) <=
          1e-2);
    CHECK(rel_error(heads(got, bt, ht, s.hq, s.hq + s.hkv, s.d),
                    heads(dqkv_ref, bt, ht, s.hq, s.hq + s.hkv, s.d)) <= 1e-2);
    CHECK(rel_error(heads(got, bt, ht, s.hq + s.hkv, ht, s.d),
                    heads(dqkv_ref, bt, ht, s.hq + s.hkv, ht, s.d)) <= 1e-2);
    if (first_out.empty()) {
      first_out = out;
      first_dqkv = dqkv;
    } else {
      CHECK(out == first_out);
      CHECK(dqkv == first_dqkv);
    }
  }
}

}  // namespace

TEST_CASE("emulated flash attention (head_dim 64) matches the CPU backend", "[integration]") {
  check_shape<64>({1, 1, 1, 1, 64}, 501);     // a single row
  check_shape<64>({2, 17, 2, 1, 64}, 502);    // GQA 2, one partial tile, batch 2
  check_shape<64>({1, 130, 4, 1, 64}, 503);   // GQA 4, three query tiles, the last 2 rows
}

TEST_CASE("emulated flash attention (head_dim 128) matches the CPU backend", "[integration]") {
  check_shape<128>({1, 100, 2, 2, 128}, 504);  // no GQA, a full and a partial tile
  check_shape<128>({1, 128, 4, 2, 128}, 505);  // GQA 2, tile multiple (no T masking)
}

TEST_CASE("the emulator rejects a kernel that breaks a collective", "[integration]") {
  // Lanes of one warp at different collectives: what a divergent ldmatrix or mma would be.
  REQUIRE_THROWS_AS(emu::launch({1}, {32}, 64,
                                [] {
                                  if (threadIdx.x % 2) {
                                    __syncwarp();
                                  } else {
                                    uint32_t r[4];
                                    emu::ldmatrix(r, meap::cuda::attn::dynamic_smem(), false);
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
