// Every CUDA kernel besides the flash attention (test_attention_emulation.cpp) run from its real
// source (kernels/*.cuh) on the host emulator (tests/cuda_emulator.hpp), with each launcher's
// sequence of launches (geometry from the same helpers) reproduced here, against the CPU
// backend -- the oracle -- on fresh random inputs (the same bf16-rounded values for both):
// fp32 outputs within 1e-5 (normwise relative), bf16 outputs within 1e-2. Outputs start as NaN
// and are followed by guard elements no kernel may touch; every sequence runs under both of the
// emulator's schedules (warp 0 first, last warp first) and must give the same bits.
//
// Not emulated here: the CUB radix sort of the embedding backward -- a std::stable_sort of the
// same (key, position) pairs by the same key bits stands in for cub::DeviceRadixSort::SortPairs,
// which is a stable LSD radix sort --, the launchers' argument checks and streams, and what the
// emulator itself leaves out (cuda_emulator.hpp: memory model, FMA contraction, last-ulp
// differences of expf / logf). Needs no CUDA toolkit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <type_traits>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/dtype.hpp"
#include "meap/core/rng.hpp"

// The emulator first: it supplies the CUDA names the kernel headers use.
#include "cuda_emulator.hpp"

#include "attention_reference.cuh"
#include "cast.cuh"
#include "cross_entropy.cuh"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "optimizer.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

namespace {

namespace cd = meap::cuda::detail;
namespace attn_ref = meap::cuda::attention_reference_kernels;
namespace cast_k = meap::cuda::cast_kernels;
namespace ce = meap::cuda::cross_entropy_kernels;
namespace ew = meap::cuda::elementwise_kernels;
namespace emb = meap::cuda::embedding_kernels;
namespace opt = meap::cuda::optimizer_kernels;
namespace norm = meap::cuda::rmsnorm_kernels;
namespace rope_k = meap::cuda::rope_kernels;
namespace swiglu_k = meap::cuda::swiglu_kernels;

using meap::Tensor;
constexpr auto kF32 = meap::DType::f32;
constexpr auto kHost = meap::Device::cpu;

// ---- launches ---------------------------------------------------------------------------------
emu::Order g_order = emu::Order::first_warp_first;  // the schedule every launch below runs under

void emulate(emu::Dim3 grid, emu::Dim3 block, size_t smem, std::function<void()> kernel) {
  emu::launch(grid, block, smem, std::move(kernel), g_order);
}

void emulate(int64_t grid, int block, std::function<void()> kernel) {
  emulate({static_cast<unsigned>(grid)}, {static_cast<unsigned>(block)}, 0, std::move(kernel));
}

// ---- storage types: float (f32) or uint16_t (bf16 bits) --------------------------------------
template <class S>
constexpr bool kBf16 = std::is_same_v<S, uint16_t>;

template <class S>
const char* storage_name() {
  return kBf16<S> ? "bf16" : "f32";
}

// Normwise tolerance of an output stored as S.
template <class S>
double tolerance() {
  return kBf16<S> ? 1e-2 : 1e-5;
}

template <class S>
S store(float x) {
  if constexpr (kBf16<S>)
    return meap::f32_to_bf16(x);
  else
    return x;
}

template <class S>
float load(S x) {
  if constexpr (kBf16<S>)
    return meap::bf16_to_f32(x);
  else
    return x;
}

// All bits set: NaN for float, double and bf16; -1 / 0xffffffff for the integer buffers.
template <class T>
T poison() {
  T v;
  std::memset(&v, 0xff, sizeof v);
  return v;
}

template <class T>
bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

float normal(uint64_t seed, uint64_t stream, int64_t i) {
  return static_cast<float>(meap::philox_normal(seed, stream, static_cast<uint64_t>(i)));
}

// An integer in [lo, hi) from Philox.
int32_t uniform_int(uint64_t seed, uint64_t stream, int64_t i, int64_t lo, int64_t hi) {
  const meap::PhiloxCounter r =
      meap::philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32),
                        static_cast<uint32_t>(stream), 0x5eed},
                       meap::philox_key(seed));
  return static_cast<int32_t>(lo + static_cast<int64_t>(r[0] % static_cast<uint64_t>(hi - lo)));
}

// n values shift + scale * N(0, 1), stored as S.
template <class S>
std::vector<S> random_values(int64_t n, uint64_t seed, uint64_t stream, float scale = 1.0f,
                             float shift = 0.0f) {
  std::vector<S> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = store<S>(shift + scale * normal(seed, stream, i));
  return v;
}

// The first n values of v (all of them by default) widened to fp32.
template <class S>
std::vector<float> widen(const std::vector<S>& v, int64_t n = -1) {
  std::vector<float> f(n < 0 ? v.size() : static_cast<size_t>(n));
  for (size_t i = 0; i < f.size(); ++i) f[i] = load(v[i]);
  return f;
}

// ---- guarded buffers: n values, then kGuard poisoned elements no kernel may write ------------
constexpr int64_t kGuard = 37;

template <class T>
std::vector<T> with_guard(std::vector<T> v) {
  v.resize(v.size() + kGuard, poison<T>());
  return v;
}

template <class T>
std::vector<T> poisoned(int64_t n) {
  return std::vector<T>(n + kGuard, poison<T>());
}

template <class T>
bool guard_intact(const std::vector<T>& v) {
  for (size_t i = v.size() - kGuard; i < v.size(); ++i)
    if (!same_bits(v[i], poison<T>())) return false;
  return true;
}

// ||got - ref|| / ||ref||, with an RMS floor of 1e-3 for (nearly) zero references; NaN fails.
double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  REQUIRE(got.size() == ref.size());
  double diff = 0, norm_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    diff += d * d;
    norm_ref += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(diff) /
         std::max(std::sqrt(norm_ref), 1e-3 * std::sqrt(static_cast<double>(got.size())));
}

// ---- determinism -----------------------------------------------------------------------------
template <class T>
void append_bytes(std::vector<unsigned char>& out, const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  out.insert(out.end(), p, p + v.size() * sizeof(T));
}

// Runs `run` -- fresh outputs, the emulated launches -- under both schedules; the outputs it
// leaves in `outputs` must agree bit for bit (the threads' arithmetic is fixed: only a race could
// change them). The last run's outputs stay for the caller to check.
template <class Run, class... Outputs>
void run_both_schedules(Run&& run, const Outputs&... outputs) {
  std::vector<unsigned char> first;
  for (emu::Order order : {emu::Order::first_warp_first, emu::Order::last_warp_first}) {
    g_order = order;
    run();
    std::vector<unsigned char> bytes;
    (append_bytes(bytes, outputs), ...);
    if (order == emu::Order::first_warp_first)
      first = std::move(bytes);
    else
      CHECK(bytes == first);
  }
  g_order = emu::Order::first_warp_first;
}

meap::Backend& cpu() {
  static const std::unique_ptr<meap::Backend> backend = meap::make_backend(meap::DeviceChoice::cpu);
  return *backend;
}

Tensor view(std::vector<float>& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), kF32, kHost, dims);
}

Tensor view(std::vector<int32_t>& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), meap::DType::i32, kHost, dims);
}

// ---- embedding ---------------------------------------------------------------------------------
template <class S>
void check_embedding_forward(int64_t n, int64_t v, int64_t c, uint64_t seed) {
  INFO(storage_name<S>() << " embedding forward, n " << n << ", v " << v << ", c " << c);
  std::vector<int32_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = uniform_int(seed, 0, i, 0, v);
  tokens[1] = -1;  // outside [0, v): a row of NaN
  tokens[n - 2] = static_cast<int32_t>(v);
  const std::vector<S> table = random_values<S>(v * c, seed, 1);

  std::vector<S> out;
  run_both_schedules(
      [&] {
        out = poisoned<S>(n * c);
        emulate(cd::grid_for(n * c), cd::kThreads, [&] {
          emb::embedding_forward_kernel<S>(out.data(), tokens.data(), table.data(), n, v, c);
        });
      },
      out);
  CHECK(guard_intact(out));

  // The CPU backend takes valid tokens only: it gets token 0 where the kernel writes NaN.
  std::vector<int32_t> valid = tokens;
  for (int32_t& t : valid) t = (t >= 0 && t < v) ? t : 0;
  std::vector<float> table_f = widen(table), ref(n * c);
  cpu().embedding_forward(view(ref, {n, c}), view(valid, {n}), view(table_f, {v, c}));
  const std::vector<float> got = widen(out, n * c);
  std::vector<float> got_valid, ref_valid;
  bool invalid_rows_nan = true;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      if (valid[i] != tokens[i]) {
        invalid_rows_nan = invalid_rows_nan && std::isnan(got[i * c + j]);
      } else {
        got_valid.push_back(got[i * c + j]);
        ref_valid.push_back(ref[i * c + j]);
      }
    }
  CHECK(invalid_rows_nan);
  CHECK(rel_error(got_valid, ref_valid) <= tolerance<S>());
  CHECK(got_valid == ref_valid);  // a gather copies exactly
}

// cub::DeviceRadixSort::SortPairs with the launcher's arguments: a stable sort of the (key,
// value) pairs by key bits [0, end_bit); the keys themselves are copied whole.
void radix_sort_pairs(const std::vector<uint32_t>& keys_in, std::vector<uint32_t>& keys_out,
                      const std::vector<int32_t>& values_in, std::vector<int32_t>& values_out,
                      int64_t n, int end_bit) {
  const uint32_t mask = end_bit >= 32 ? 0xffffffffu : (1u << end_bit) - 1;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return (keys_in[a] & mask) < (keys_in[b] & mask);
  });
  for (int64_t i = 0; i < n; ++i) {
    keys_out[i] = keys_in[order[i]];
    values_out[i] = values_in[order[i]];
  }
}

template <class S>
void check_embedding_backward(int64_t n, int64_t v, int64_t c, bool invalid_ids, uint64_t seed) {
  INFO(storage_name<S>() << " embedding backward, n " << n << ", v " << v << ", c " << c
                         << (invalid_ids ? ", ids outside the vocabulary" : ""));
  // n >> v: every token repeats. Ids outside [0, v) are sorted last and skipped; without them
  // the last run of the sorted keys is a real token's.
  std::vector<int32_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = uniform_int(seed, 0, i, 0, v);
  if (invalid_ids) {
    for (int64_t i = 5; i < n; i += 17) tokens[i] = -1;
    for (int64_t i = 7; i < n; i += 23) tokens[i] = static_cast<int32_t>(v);
    for (int64_t i = 3; i < n; i += 29) tokens[i] = static_cast<int32_t>(v + 3);
  }
  const std::vector<S> dout = random_values<S>(n * c, seed, 1);
  const std::vector<float> dtable0 = random_values<float>(v * c, seed, 2);  // dtable +=

  std::vector<float> dtable;
  run_both_schedules(
      [&] {
        dtable = with_guard(dtable0);
        std::vector<uint32_t> keys_in = poisoned<uint32_t>(n), keys_out = poisoned<uint32_t>(n);
        std::vector<int32_t> pos_in = poisoned<int32_t>(n), pos_out = poisoned<int32_t>(n);
        emulate(cd::grid_for(n), cd::kThreads, [&] {
          emb::embedding_sort_input_kernel(keys_in.data(), pos_in.data(), tokens.data(), n, v);
        });
        CHECK(guard_intact(keys_in));
        CHECK(guard_intact(pos_in));
        radix_sort_pairs(keys_in, keys_out, pos_in, pos_out, n, emb::key_bits(v));
        emulate(n, emb::runs_threads(c), [&] {
          emb::embedding_backward_runs_kernel<S>(dtable.data(), dout.data(), keys_out.data(),
                                                 pos_out.data(), n, v, c);
        });
      },
      dtable);
  CHECK(guard_intact(dtable));

  // The CPU backend on the valid positions only, in order (the kernel skips the others).
  std::vector<int32_t> valid_tokens;
  std::vector<float> valid_dout;
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] >= 0 && tokens[i] < v) {
      valid_tokens.push_back(tokens[i]);
      for (int64_t j = 0; j < c; ++j) valid_dout.push_back(load(dout[i * c + j]));
    }
  const auto n_valid = static_cast<int64_t>(valid_tokens.size());
  std::vector<float> ref = dtable0;
  cpu().embedding_backward(view(ref, {v, c}), view(valid_dout, {n_valid, c}),
                           view(valid_tokens, {n_valid}));
  CHECK(rel_error(widen(dtable, v * c), ref) <= 1e-5);  // dtable is fp32
}

TEST_CASE("emulated embedding kernels match the CPU backend", "[integration]") {
  check_embedding_forward<float>(37, 50, 100, 601);  // 3700 elements: 15 blocks, the last partial
  check_embedding_forward<uint16_t>(37, 50, 100, 602);
  // 96 threads for 70 columns; 256 threads striding over 300 columns.
  for (bool invalid_ids : {true, false}) {
    check_embedding_backward<float>(300, 23, 70, invalid_ids, 603);
    check_embedding_backward<uint16_t>(300, 23, 70, invalid_ids, 604);
    check_embedding_backward<float>(150, 11, 300, invalid_ids, 605);
    check_embedding_backward<uint16_t>(150, 11, 300, invalid_ids, 606);
  }
}

// ---- RMSNorm -----------------------------------------------------------------------------------
template <class S>
void check_rmsnorm_forward(int64_t n, int64_t c, uint64_t seed) {
  INFO(storage_name<S>() << " rmsnorm forward, n " << n << ", c " << c);
  const double eps = 1e-5;
  const std::vector<S> x = random_values<S>(n * c, seed, 0, 2.0f);
  const std::vector<S> weight = random_values<S>(c, seed, 1, 0.2f, 1.0f);

  std::vector<S> out;
  std::vector<float> rstd;
  run_both_schedules(
      [&] {
        out = poisoned<S>(n * c);
        rstd = poisoned<float>(n);
        emulate(n, norm::row_threads(c), [&] {
          norm::rmsnorm_forward_kernel<S>(out.data(), rstd.data(), x.data(), weight.data(), c,
                                          static_cast<float>(eps));
        });
      },
      out, rstd);
  CHECK(guard_intact(out));
  CHECK(guard_intact(rstd));

  std::vector<float> x_f = widen(x), w_f = widen(weight), out_ref(n * c), rstd_ref(n);
  cpu().rmsnorm_forward(view(out_ref, {n, c}), view(rstd_ref, {n}), view(x_f, {n, c}),
                        view(w_f, {c}), eps);
  CHECK(rel_error(widen(out, n * c), out_ref) <= tolerance<S>());
  CHECK(rel_error(widen(rstd, n), rstd_ref) <= 1e-5);
}

template <class S>
void check_rmsnorm_backward(int64_t n, int64_t c, uint64_t seed) {
  INFO(storage_name<S>() << " rmsnorm backward, n " << n << ", c " << c);
  const std::vector<S> x = random_values<S>(n * c, seed, 0, 2.0f);
  const std::vector<S> weight = random_values<S>(c, seed, 1, 0.2f, 1.0f);
  const std::vector<S> dout = random_values<S>(n * c, seed, 2);
  const std::vector<S> dx0 = random_values<S>(n * c, seed, 3);           // dx +=
  const std::vector<float> dweight0 = random_values<float>(c, seed, 4);  // dweight +=
  std::vector<float> x_f = widen(x), w_f = widen(weight), dout_f = widen(dout);
  std::vector<float> rstd(n), normed(n * c);  // both backwards get the CPU forward's rstd
  cpu().rmsnorm_forward(view(normed, {n, c}), view(rstd, {n}), view(x_f, {n, c}), view(w_f, {c}),
                        1e-5);

  const int64_t chunk_rows = norm::rows_per_chunk(n);
  const int64_t chunks = (n + chunk_rows - 1) / chunk_rows;
  const int64_t col_blocks = (c + cd::kThreads - 1) / cd::kThreads;
  std::vector<S> dx;
  std::vector<float> dweight;
  run_both_schedules(
      [&] {
        dx = with_guard(dx0);
        dweight = with_guard(dweight0);
        std::vector<float> partial = poisoned<float>(chunks * c);  // the launcher's scratch
        emulate(n, norm::row_threads(c), [&] {
          norm::rmsnorm_backward_dx_kernel<S>(dx.data(), dout.data(), x.data(), weight.data(),
                                              rstd.data(), c);
        });
        emulate({static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)},
               {static_cast<unsigned>(cd::kThreads)}, 0, [&] {
                 norm::rmsnorm_dweight_partial_kernel<S>(partial.data(), dout.data(), x.data(),
                                                         rstd.data(), n, c, chunk_rows);
               });
        CHECK(guard_intact(partial));
        emulate(col_blocks, cd::kThreads, [&] {
          norm::rmsnorm_dweight_final_kernel(dweight.data(), partial.data(), chunks, c);
        });
      },
      dx, dweight);
  CHECK(guard_intact(dx));
  CHECK(guard_intact(dweight));

  std::vector<float> dx_ref = widen(dx0), dweight_ref = dweight0;
  cpu().rmsnorm_backward(view(dx_ref, {n, c}), view(dweight_ref, {c}), view(dout_f, {n, c}),
                         view(x_f, {n, c}), view(w_f, {c}), view(rstd, {n}));
  CHECK(rel_error(widen(dx, n * c), dx_ref) <= tolerance<S>());
  CHECK(rel_error(widen(dweight, c), dweight_ref) <= 1e-5);  // dweight is fp32
}

TEST_CASE("emulated RMSNorm kernels match the CPU backend", "[integration]") {
  // 300 columns: 320 threads (10 warps, the last one partly idle); 1500: 1024 threads, 2 strides.
  check_rmsnorm_forward<float>(5, 300, 611);
  check_rmsnorm_forward<uint16_t>(5, 300, 612);
  check_rmsnorm_forward<float>(3, 1500, 613);
  check_rmsnorm_forward<uint16_t>(3, 1500, 614);
  // 66 rows: two dweight chunks (64 + 2 rows); 300 columns: two column blocks, one partial.
  check_rmsnorm_backward<float>(66, 300, 615);
  check_rmsnorm_backward<uint16_t>(66, 300, 616);
  check_rmsnorm_backward<float>(3, 40, 617);
  check_rmsnorm_backward<uint16_t>(3, 40, 618);
}

// ---- RoPE --------------------------------------------------------------------------------------
template <class S>
void check_rope(bool inverse, uint64_t seed) {
  const int64_t b = 2, t = 7, h_total = 5, h_rot = 3, d = 18, half = d / 2;
  INFO(storage_name<S>() << " rope, inverse " << inverse);
  std::vector<float> cos_t(t * half), sin_t(t * half);
  for (int64_t ti = 0; ti < t; ++ti)
    for (int64_t j = 0; j < half; ++j) {
      const double angle = ti * std::pow(10000.0, -2.0 * j / d);
      cos_t[ti * half + j] = static_cast<float>(std::cos(angle));
      sin_t[ti * half + j] = static_cast<float>(std::sin(angle));
    }
  const int64_t n = b * t * h_total * d;
  const std::vector<S> x0 = random_values<S>(n, seed, 0);
  const int64_t total = b * t * h_rot * half;  // 378: two blocks, the second partial

  std::vector<S> x;
  run_both_schedules(
      [&] {
        x = with_guard(x0);  // in place
        emulate(cd::grid_for(total), cd::kThreads, [&] {
          rope_k::rope_kernel<S>(x.data(), cos_t.data(), sin_t.data(), b, t, h_total, h_rot, d,
                                 inverse ? -1.0f : 1.0f);
        });
      },
      x);
  CHECK(guard_intact(x));

  std::vector<float> ref = widen(x0);
  const Tensor tx = view(ref, {b, t, h_total, d});
  if (inverse)
    cpu().rope_backward(tx, static_cast<int>(h_rot), view(cos_t, {t, half}),
                        view(sin_t, {t, half}));
  else
    cpu().rope_forward(tx, static_cast<int>(h_rot), view(cos_t, {t, half}),
                       view(sin_t, {t, half}));
  CHECK(rel_error(widen(x, n), ref) <= tolerance<S>());
  bool others_untouched = true;  // heads [h_rot, h_total) keep their bits
  for (int64_t row = 0; row < b * t; ++row)
    for (int64_t e = h_rot * d; e < h_total * d; ++e)
      others_untouched =
          others_untouched && same_bits(x[row * h_total * d + e], x0[row * h_total * d + e]);
  CHECK(others_untouched);
}

TEST_CASE("emulated RoPE kernel matches the CPU backend", "[integration]") {
  check_rope<float>(false, 621);
  check_rope<float>(true, 622);
  check_rope<uint16_t>(false, 623);
  check_rope<uint16_t>(true, 624);
}

// ---- SwiGLU ------------------------------------------------------------------------------------
template <class S>
void check_swiglu(int64_t n, int64_t f, uint64_t seed) {
  INFO(storage_name<S>() << " swiglu, n " << n << ", f " << f);
  const std::vector<S> gate_up = random_values<S>(n * 2 * f, seed, 0, 2.0f);
  const std::vector<S> dout = random_values<S>(n * f, seed, 1);

  std::vector<S> out, dgate_up;
  run_both_schedules(
      [&] {
        out = poisoned<S>(n * f);
        dgate_up = poisoned<S>(n * 2 * f);
        emulate(cd::grid_for(n * f), cd::kThreads, [&] {
          swiglu_k::swiglu_forward_kernel<S>(out.data(), gate_up.data(), n, f);
        });
        emulate(cd::grid_for(n * f), cd::kThreads, [&] {
          swiglu_k::swiglu_backward_kernel<S>(dgate_up.data(), dout.data(), gate_up.data(), n, f);
        });
      },
      out, dgate_up);
  CHECK(guard_intact(out));
  CHECK(guard_intact(dgate_up));

  std::vector<float> gu_f = widen(gate_up), dout_f = widen(dout), out_ref(n * f),
                     dgu_ref(n * 2 * f);
  cpu().swiglu_forward(view(out_ref, {n, f}), view(gu_f, {n, 2 * f}));
  cpu().swiglu_backward(view(dgu_ref, {n, 2 * f}), view(dout_f, {n, f}), view(gu_f, {n, 2 * f}));
  CHECK(rel_error(widen(out, n * f), out_ref) <= tolerance<S>());
  CHECK(rel_error(widen(dgate_up, n * 2 * f), dgu_ref) <= tolerance<S>());
}

TEST_CASE("emulated SwiGLU kernels match the CPU backend", "[integration]") {
  check_swiglu<float>(13, 77, 631);  // 1001 elements: 4 blocks, the last partial
  check_swiglu<uint16_t>(13, 77, 632);
}

// ---- cross-entropy -----------------------------------------------------------------------------
template <class S>
void check_cross_entropy(int64_t n, int64_t v, bool alias, uint64_t seed) {
  INFO(storage_name<S>() << " cross-entropy, n " << n << ", v " << v
                         << (alias ? ", dlogits aliasing logits" : ""));
  const double grad_scale = 0.37;
  const std::vector<S> logits0 = random_values<S>(n * v, seed, 0, 3.0f);
  std::vector<int32_t> targets(n);
  std::vector<float> weights(n);
  for (int64_t i = 0; i < n; ++i) {
    weights[i] = i % 3 == 1 ? 0.0f : 0.5f * static_cast<float>(1 + i % 4);
    // A weight-0 position's target is never read: make it invalid.
    targets[i] = weights[i] == 0.0f ? -1 : uniform_int(seed, 1, i, 0, v);
  }

  std::vector<float> losses;
  std::vector<S> logits, dlogits;
  run_both_schedules(
      [&] {
        losses = poisoned<float>(n);
        logits = with_guard(logits0);
        dlogits = alias ? std::vector<S>{} : poisoned<S>(n * v);
        S* d = alias ? logits.data() : dlogits.data();
        emulate(n, ce::row_threads(v), [&] {
          ce::cross_entropy_kernel<S>(losses.data(), d, logits.data(), targets.data(),
                                      weights.data(), v, grad_scale);
        });
      },
      losses, logits, dlogits);
  CHECK(guard_intact(losses));
  CHECK(guard_intact(logits));
  if (!alias) {
    CHECK(guard_intact(dlogits));
    CHECK(std::equal(logits0.begin(), logits0.end(), logits.begin(), same_bits<S>));
  }

  std::vector<float> logits_f = widen(logits0), loss_ref(n), dlogits_ref(n * v);
  cpu().cross_entropy_forward_backward(view(loss_ref, {n}), view(dlogits_ref, {n, v}),
                                       view(logits_f, {n, v}), view(targets, {n}),
                                       view(weights, {n}), grad_scale);
  CHECK(rel_error(widen(losses, n), loss_ref) <= 1e-5);  // losses are fp32
  CHECK(rel_error(widen(alias ? logits : dlogits, n * v), dlogits_ref) <= tolerance<S>());
}

// A weighted position with a target outside [0, v) gives NaN (the CPU backend has no such case).
template <class S>
void check_cross_entropy_invalid_target() {
  INFO(storage_name<S>() << " cross-entropy, invalid target");
  const int64_t n = 2, v = 70;
  const std::vector<S> logits = random_values<S>(n * v, 640, 0);
  std::vector<int32_t> targets = {static_cast<int32_t>(v), 3};
  std::vector<float> weights = {1.0f, 1.0f};
  std::vector<float> losses = poisoned<float>(n);
  std::vector<S> dlogits = poisoned<S>(n * v);
  emulate(n, ce::row_threads(v), [&] {
    ce::cross_entropy_kernel<S>(losses.data(), dlogits.data(), logits.data(), targets.data(),
                                weights.data(), v, 1.0);
  });
  const std::vector<float> d = widen(dlogits, n * v);
  CHECK(std::isnan(losses[0]));
  CHECK(std::all_of(d.begin(), d.begin() + v, [](float x) { return std::isnan(x); }));
  CHECK(std::isfinite(losses[1]));
  CHECK(std::all_of(d.begin() + v, d.end(), [](float x) { return std::isfinite(x); }));
}

TEST_CASE("emulated cross-entropy kernel matches the CPU backend", "[integration]") {
  for (bool alias : {false, true}) {
    // 1100 columns: 1024 threads, some with two columns; 70 columns: 96 threads (3 warps).
    check_cross_entropy<float>(6, 1100, alias, 651);
    check_cross_entropy<uint16_t>(6, 1100, alias, 652);
    check_cross_entropy<float>(5, 70, alias, 653);
    check_cross_entropy<uint16_t>(5, 70, alias, 654);
  }
  check_cross_entropy_invalid_target<float>();
  check_cross_entropy_invalid_target<uint16_t>();
}

// ---- optimizer ---------------------------------------------------------------------------------
template <class S>
void check_sum_squares(int64_t n, uint64_t seed) {
  INFO(storage_name<S>() << " sum_squares, n " << n);
  const std::vector<S> x = random_values<S>(n, seed, 0);
  const int blocks = opt::partial_blocks(n);
  std::vector<double> result;
  run_both_schedules(
      [&] {
        std::vector<double> partial = poisoned<double>(opt::kMaxPartials);  // the scratch
        result = poisoned<double>(1);
        emulate(blocks, cd::kThreads,
               [&] { opt::sum_squares_partial_kernel<S>(partial.data(), x.data(), n); });
        emulate(1, cd::kThreads,
               [&] { opt::sum_squares_final_kernel(result.data(), partial.data(), blocks); });
        CHECK(guard_intact(partial));
      },
      result);
  CHECK(guard_intact(result));

  std::vector<float> x_f = widen(x);
  const double ref = cpu().sum_squares(view(x_f, {n}));  // accumulated in double as well
  if (n == 0)
    CHECK(result[0] == 0.0);
  else
    CHECK(std::abs(result[0] - ref) <= 1e-12 * ref);
}

template <class S>
void check_scale(int64_t n, double factor, uint64_t seed) {
  INFO(storage_name<S>() << " scale, n " << n);
  const std::vector<S> x0 = random_values<S>(n, seed, 0);
  std::vector<S> x;
  run_both_schedules(
      [&] {
        x = with_guard(x0);  // in place
        emulate(cd::grid_for(n), cd::kThreads, [&] {
          opt::scale_kernel<S>(x.data(), n, static_cast<float>(factor));
        });
      },
      x);
  CHECK(guard_intact(x));
  std::vector<float> ref = widen(x0);
  cpu().scale(view(ref, {n}), factor);
  CHECK(rel_error(widen(x, n), ref) <= tolerance<S>());
}

void check_adamw(bool working_copy, uint64_t seed) {
  INFO("adamw, working copy " << working_copy);
  const int64_t n = 3000;  // 12 blocks, the last partial
  meap::AdamWStep hp;
  hp.lr = 0.05;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;
  hp.step = 3;
  const std::vector<float> param0 = random_values<float>(n, seed, 0);
  const std::vector<float> grad = random_values<float>(n, seed, 1, 0.1f);
  const std::vector<float> m0 = random_values<float>(n, seed, 2, 0.01f);
  std::vector<float> v0 = random_values<float>(n, seed, 3, 0.01f);
  for (float& x : v0) x *= x;

  std::vector<float> param, m, v;
  std::vector<uint16_t> copy;
  run_both_schedules(
      [&] {
        param = with_guard(param0);
        m = with_guard(m0);
        v = with_guard(v0);
        copy = working_copy ? poisoned<uint16_t>(n) : std::vector<uint16_t>{};
        const opt::AdamWConstants k = opt::adamw_constants(hp.lr, hp.beta1, hp.beta2, hp.eps,
                                                           hp.weight_decay, hp.step);
        emulate(cd::grid_for(n), cd::kThreads, [&] {
          opt::adamw_kernel(param.data(), grad.data(), m.data(), v.data(),
                            working_copy ? copy.data() : nullptr, n, k);
        });
      },
      param, m, v, copy);
  CHECK(guard_intact(param));
  CHECK(guard_intact(m));
  CHECK(guard_intact(v));

  std::vector<float> p_ref = param0, g = grad, m_ref = m0, v_ref = v0;
  std::vector<uint16_t> copy_ref(n);
  const Tensor copy_view =
      working_copy ? Tensor(copy_ref.data(), meap::DType::bf16, kHost, {n}) : Tensor();
  cpu().adamw_update(view(p_ref, {n}), view(g, {n}), view(m_ref, {n}), view(v_ref, {n}), hp,
                     copy_view);
  const std::vector<float> p = widen(param, n);
  CHECK(rel_error(p, p_ref) <= 1e-5);
  CHECK(rel_error(widen(m, n), m_ref) <= 1e-5);
  CHECK(rel_error(widen(v, n), v_ref) <= 1e-5);
  std::vector<float> update(n), update_ref(n);  // the step itself, not drowned by the weights
  for (int64_t i = 0; i < n; ++i) {
    update[i] = p[i] - param0[i];
    update_ref[i] = p_ref[i] - param0[i];
  }
  CHECK(rel_error(update, update_ref) <= 1e-5);
  if (working_copy) {
    CHECK(guard_intact(copy));
    bool rounded = true;  // the working copy is the updated master rounded to nearest even
    for (int64_t i = 0; i < n; ++i) rounded = rounded && copy[i] == meap::f32_to_bf16(p[i]);
    CHECK(rounded);
    CHECK(rel_error(widen(copy, n), widen(copy_ref)) <= 1e-2);
  }
}

TEST_CASE("emulated optimizer kernels match the CPU backend", "[integration]") {
  check_sum_squares<float>(20000, 661);  // 3 partial blocks
  check_sum_squares<uint16_t>(20000, 662);
  check_sum_squares<float>(300, 663);
  check_sum_squares<uint16_t>(300, 664);
  check_sum_squares<float>(0, 665);
  // 2^23 + 1000 elements: the grid stops at kMaxPartials = 1024 blocks, each thread strides.
  check_sum_squares<float>(opt::kMaxPartials * opt::kElementsPerBlock + 1000, 670);
  check_scale<float>(1001, 0.3, 666);
  check_scale<uint16_t>(1001, 0.3, 667);
  check_adamw(false, 668);
  check_adamw(true, 669);
}

// ---- casts -------------------------------------------------------------------------------------
TEST_CASE("emulated casts are bit-exact", "[integration]") {
  // f32 -> bf16: normal values at several scales, subnormals, and the edge cases of rounding.
  std::vector<uint32_t> bits = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000,  // zeros, infinities
      0x7fc00000, 0x7f800001, 0xffffffff, 0x7fa12345,  // NaNs (quieted, payload kept)
      0x7f7fffff, 0x7f7f8000, 0xff7f8001,              // overflow to infinity on rounding
      0x00000001, 0x00008000, 0x00018000, 0x807fffff,  // subnormals, ties
      0x00800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0xbf807fff};
  for (int64_t i = 0; i < 1000; ++i) {
    const float scale = std::pow(10.0f, static_cast<float>(i % 9 - 4) * 9.0f);
    const float x = scale * normal(671, 0, i);
    uint32_t u;
    std::memcpy(&u, &x, 4);
    bits.push_back(u);
  }
  const auto n = static_cast<int64_t>(bits.size());
  std::vector<float> src(n);
  std::memcpy(src.data(), bits.data(), 4 * n);
  std::vector<uint16_t> dst;
  run_both_schedules(
      [&] {
        dst = poisoned<uint16_t>(n);
        emulate(cd::grid_for(n), cd::kThreads,
               [&] { cast_k::f32_to_bf16_kernel(dst.data(), src.data(), n); });
      },
      dst);
  CHECK(guard_intact(dst));
  std::vector<uint16_t> ref(n);
  cpu().cast(Tensor(ref.data(), meap::DType::bf16, kHost, {n}), view(src, {n}));
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i)
    mismatches += dst[i] != ref[i] || ref[i] != meap::f32_to_bf16(src[i]);
  CHECK(mismatches == 0);

  // bf16 -> f32: all 65536 bit patterns.
  const int64_t m = 65536;
  std::vector<uint16_t> all(m);
  std::iota(all.begin(), all.end(), uint16_t{0});
  std::vector<float> wide;
  run_both_schedules(
      [&] {
        wide = poisoned<float>(m);
        emulate(cd::grid_for(m), cd::kThreads,
               [&] { cast_k::bf16_to_f32_kernel(wide.data(), all.data(), m); });
      },
      wide);
  CHECK(guard_intact(wide));
  std::vector<float> wide_ref(m);
  cpu().cast(view(wide_ref, {m}), Tensor(all.data(), meap::DType::bf16, kHost, {m}));
  mismatches = 0;
  for (int64_t i = 0; i < m; ++i) mismatches += !same_bits(wide[i], wide_ref[i]);
  CHECK(mismatches == 0);
}

// ---- elementwise -------------------------------------------------------------------------------
TEST_CASE("emulated residual adds match the CPU backend", "[integration]") {
  const int64_t n = 1001;  // 4 blocks, the last partial
  for (bool alias : {false, true}) {
    INFO((alias ? "out aliasing a" : "separate out"));
    const std::vector<float> a = random_values<float>(n, 681, 0);
    const std::vector<float> b = random_values<float>(n, 681, 1);
    std::vector<float> a_buf, out;
    run_both_schedules(
        [&] {
          a_buf = with_guard(a);
          out = alias ? std::vector<float>{} : poisoned<float>(n);
          float* o = alias ? a_buf.data() : out.data();
          emulate(ew::grid_for(n), ew::kThreads,
                 [&] { ew::add_f32_kernel(o, a_buf.data(), b.data(), n); });
        },
        a_buf, out);
    const std::vector<float>& got = alias ? a_buf : out;
    CHECK(guard_intact(got));
    std::vector<float> a_f = a, b_f = b, ref(n);
    cpu().add_forward(view(ref, {n}), view(a_f, {n}), view(b_f, {n}));
    CHECK(rel_error(widen(got, n), ref) <= 1e-5);
    CHECK(widen(got, n) == ref);  // one fp32 add each

    const std::vector<uint16_t> ah = random_values<uint16_t>(n, 682, 0),
                                bh = random_values<uint16_t>(n, 682, 1);
    std::vector<uint16_t> ah_buf, outh;
    auto bf = [](std::vector<uint16_t>& v) { return reinterpret_cast<__nv_bfloat16*>(v.data()); };
    auto cbf = [](const std::vector<uint16_t>& v) {
      return reinterpret_cast<const __nv_bfloat16*>(v.data());
    };
    run_both_schedules(
        [&] {
          ah_buf = with_guard(ah);
          outh = alias ? std::vector<uint16_t>{} : poisoned<uint16_t>(n);
          __nv_bfloat16* o = alias ? bf(ah_buf) : bf(outh);
          emulate(ew::grid_for(n), ew::kThreads,
                 [&] { ew::add_bf16_kernel(o, bf(ah_buf), cbf(bh), n); });
        },
        ah_buf, outh);
    const std::vector<uint16_t>& goth = alias ? ah_buf : outh;
    CHECK(guard_intact(goth));
    std::vector<float> ah_f = widen(ah), bh_f = widen(bh), refh(n);
    cpu().add_forward(view(refh, {n}), view(ah_f, {n}), view(bh_f, {n}));
    CHECK(rel_error(widen(goth, n), refh) <= 1e-2);
    bool rounded = true;  // the fp32 sum rounded to nearest even
    for (int64_t i = 0; i < n; ++i) rounded = rounded && goth[i] == meap::f32_to_bf16(refh[i]);
    CHECK(rounded);
  }
}

// ---- reference attention -----------------------------------------------------------------------
struct AttnShape {
  int64_t b, t;
  int hq, hkv, d;
};

// Heads [h0, h1) of a (B, T, H, D) tensor, flattened.
std::vector<float> heads(const std::vector<float>& x, int64_t bt, int64_t h_total, int64_t h0,
                         int64_t h1, int64_t d) {
  std::vector<float> out;
  for (int64_t r = 0; r < bt; ++r)
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t i = 0; i < d; ++i) out.push_back(x[(r * h_total + h) * d + i]);
  return out;
}

template <class S>
void check_attention_reference(const AttnShape& s, uint64_t seed) {
  INFO(storage_name<S>() << " reference attention, B " << s.b << ", T " << s.t << ", Hq " << s.hq
                         << ", Hkv " << s.hkv << ", D " << s.d);
  const int64_t ht = s.hq + 2 * s.hkv, bt = s.b * s.t;
  const int64_t n_qkv = bt * ht * s.d, n_out = bt * s.hq * s.d, n_stat = s.b * s.hq * s.t;
  const std::vector<S> qkv = random_values<S>(n_qkv, seed, 0, 1.5f);
  const std::vector<S> dout = random_values<S>(n_out, seed, 1);
  const attn_ref::Dims dims = attn_ref::make_dims_unchecked(s.t, s.hq, s.hkv, s.d);
  const unsigned threads = static_cast<unsigned>(attn_ref::block_threads(s.d));
  const emu::Dim3 grid_q{static_cast<unsigned>(s.t), static_cast<unsigned>(s.hq),
                         static_cast<unsigned>(s.b)};
  const emu::Dim3 grid_kv{static_cast<unsigned>(s.t), static_cast<unsigned>(s.hkv),
                          static_cast<unsigned>(s.b)};

  std::vector<S> out;
  std::vector<float> lse;
  run_both_schedules(
      [&] {
        out = poisoned<S>(n_out);
        lse = poisoned<float>(n_stat);
        emulate(grid_q, {threads}, attn_ref::forward_smem_bytes(s.d), [&] {
          attn_ref::attention_forward_kernel<S>(out.data(), lse.data(), qkv.data(), dims);
        });
      },
      out, lse);
  CHECK(guard_intact(out));
  CHECK(guard_intact(lse));
  std::vector<float> qkv_f = widen(qkv), out_ref(n_out), lse_ref(n_stat);
  cpu().attention_forward(view(out_ref, {s.b, s.t, s.hq, s.d}), view(lse_ref, {s.b, s.hq, s.t}),
                          view(qkv_f, {s.b, s.t, ht, s.d}), s.hq, s.hkv);
  CHECK(rel_error(widen(out, n_out), out_ref) <= tolerance<S>());
  CHECK(rel_error(widen(lse, n_stat), lse_ref) <= 1e-5);

  // The backward of both from the same forward results: the emulated out and lse.
  std::vector<S> dqkv;
  run_both_schedules(
      [&] {
        dqkv = poisoned<S>(n_qkv);
        std::vector<float> delta = poisoned<float>(n_stat);  // the launcher's scratch
        emulate(grid_q, {threads}, attn_ref::backward_smem_bytes(s.d), [&] {
          attn_ref::attention_backward_dq_kernel<S>(dqkv.data(), delta.data(), dout.data(),
                                                    qkv.data(), out.data(), lse.data(), dims);
        });
        CHECK(guard_intact(delta));
        emulate(grid_kv, {threads}, attn_ref::backward_smem_bytes(s.d), [&] {
          attn_ref::attention_backward_dkv_kernel<S>(dqkv.data(), dout.data(), qkv.data(),
                                                     lse.data(), delta.data(), dims);
        });
      },
      dqkv);
  CHECK(guard_intact(dqkv));
  std::vector<float> dout_f = widen(dout), out_f = widen(out, n_out), lse_f = widen(lse, n_stat),
                     dqkv_ref(n_qkv);
  cpu().attention_backward(view(dqkv_ref, {s.b, s.t, ht, s.d}), view(dout_f, {s.b, s.t, s.hq, s.d}),
                           view(qkv_f, {s.b, s.t, ht, s.d}), view(out_f, {s.b, s.t, s.hq, s.d}),
                           view(lse_f, {s.b, s.hq, s.t}), s.hq, s.hkv);
  const std::vector<float> got = widen(dqkv, n_qkv);
  for (auto [h0, h1, what] : {std::tuple{int64_t{0}, int64_t{s.hq}, "dQ"},
                              std::tuple{int64_t{s.hq}, int64_t{s.hq + s.hkv}, "dK"},
                              std::tuple{int64_t{s.hq + s.hkv}, ht, "dV"}}) {
    INFO(what);
    CHECK(rel_error(heads(got, bt, ht, h0, h1, s.d), heads(dqkv_ref, bt, ht, h0, h1, s.d)) <=
          tolerance<S>());
  }
}

TEST_CASE("emulated reference attention matches the CPU backend", "[integration]") {
  // GQA 2, T = 66: rows past 63 take two key chunks; 128 threads for D = 40 (88 idle columns).
  check_attention_reference<float>({1, 66, 2, 1, 40}, 691);
  check_attention_reference<uint16_t>({1, 66, 2, 1, 40}, 692);
  // No GQA, batch 2, D = 160: 5 warps, 5 head-dim elements per lane in each score dot.
  check_attention_reference<float>({2, 9, 3, 3, 160}, 693);
  check_attention_reference<uint16_t>({2, 9, 3, 3, 160}, 694);
  // GQA 4, short sequences. (At T = 1 dQ and dK are exactly zero -- a softmax over one key is
  // constant -- and a comparison would measure only rounding noise.)
  check_attention_reference<float>({1, 3, 4, 1, 32}, 695);
  check_attention_reference<uint16_t>({2, 5, 4, 2, 64}, 696);
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

}  // namespace
