// The fast f32 CPU kernels (CpuKernels::fast, what make_backend(meap::DeviceChoice::cpu) trains with) against
// the reference kernels (the oracle): one table of op cases, each run on both backends from
// the same inputs, normwise relative error <= 1e-5; odd shapes, GQA ratios 1/2/4, T = 1 and
// T not a multiple of the attention block. And the fast kernels' determinism across thread
// counts.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/fast_kernels.hpp"
#include "backend/cpu/fast_math.hpp"
#include "meap/core/rng.hpp"

using namespace meap;

namespace {

constexpr double kTolerance = 1e-5;

std::vector<float> random_vector(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(scale * philox_normal(seed, 7, i));
  return v;
}

Tensor view(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return Tensor(v.data(), DType::f32, Device::cpu, shape);
}
Tensor view(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return Tensor(v.data(), DType::i32, Device::cpu, shape);
}

double relative_error(const std::vector<float>& ours, const std::vector<float>& ref) {
  REQUIRE(ours.size() == ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (static_cast<double>(ours[i]) - ref[i]) * (static_cast<double>(ours[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

void check_close(const std::string& what, const std::vector<float>& ours,
                 const std::vector<float>& ref) {
  const double err = relative_error(ours, ref);
  INFO(what << ": normwise relative error " << err);
  CHECK(err <= kTolerance);
}

struct AttentionCase {
  int64_t b, t, hq, hkv, d;
};

// Forward and backward of one attention case on a backend; returns out, lse, dqkv.
struct AttentionResult {
  std::vector<float> out, lse, dqkv;
};
AttentionResult run_attention(Backend& be, const AttentionCase& c) {
  const int64_t ht = c.hq + 2 * c.hkv;
  std::vector<float> qkv = random_vector(c.b * c.t * ht * c.d, 11);
  std::vector<float> dout = random_vector(c.b * c.t * c.hq * c.d, 12);
  AttentionResult r{std::vector<float>(c.b * c.t * c.hq * c.d),
                    std::vector<float>(c.b * c.hq * c.t),
                    std::vector<float>(qkv.size(), 123.0f)};  // must be overwritten
  const Tensor tqkv = view(qkv, {c.b, c.t, ht, c.d}), tout = view(r.out, {c.b, c.t, c.hq, c.d});
  be.attention_forward(tout, view(r.lse, {c.b, c.hq, c.t}), tqkv, static_cast<int>(c.hq),
                       static_cast<int>(c.hkv));
  be.attention_backward(view(r.dqkv, {c.b, c.t, ht, c.d}), view(dout, {c.b, c.t, c.hq, c.d}),
                        tqkv, tout, view(r.lse, {c.b, c.hq, c.t}), static_cast<int>(c.hq),
                        static_cast<int>(c.hkv));
  return r;
}

}  // namespace

TEST_CASE("fast attention matches the reference forward and backward", "[ops][fast]") {
  CpuBackend ref(CpuKernels::reference), fast(CpuKernels::fast);
  const int64_t blk = cpu::fast::kAttentionBlock;
  const std::vector<AttentionCase> cases = {
      {1, 1, 4, 4, 8},            // T = 1, no grouping
      {2, 7, 2, 1, 16},           // GQA 2, tiny T
      {3, 64, 4, 2, 32},          // exactly one block
      {2, blk + 1, 4, 1, 12},     // GQA 4, one row past a block, odd head dim
      {1, 2 * blk + 3, 8, 2, 64}, // GQA 4, several blocks
      {2, 100, 3, 3, 5},          // odd heads and head dim, GQA 1
  };
  for (const AttentionCase& c : cases) {
    INFO("B " << c.b << " T " << c.t << " Hq " << c.hq << " Hkv " << c.hkv << " D " << c.d);
    const AttentionResult r = run_attention(ref, c), f = run_attention(fast, c);
    check_close("out", f.out, r.out);
    check_close("lse", f.lse, r.lse);
    check_close("dqkv", f.dqkv, r.dqkv);
  }
}

TEST_CASE("fast elementwise kernels match the reference", "[ops][fast]") {
  CpuBackend ref(CpuKernels::reference), fast(CpuKernels::fast);
  for (const int64_t n : {1, 33, 70}) {
    for (const int64_t c : {8, 37, 96}) {
      INFO("rows " << n << " cols " << c);
      // SwiGLU: gate_up (N, 2C) -> out (N, C), and its backward.
      std::vector<float> gate_up = random_vector(n * 2 * c, 1, 3.0), dact = random_vector(n * c, 2);
      std::vector<float> act_r(n * c), act_f(n * c), dgu_r(n * 2 * c), dgu_f(n * 2 * c);
      ref.swiglu_forward(view(act_r, {n, c}), view(gate_up, {n, 2 * c}));
      fast.swiglu_forward(view(act_f, {n, c}), view(gate_up, {n, 2 * c}));
      check_close("swiglu out", act_f, act_r);
      ref.swiglu_backward(view(dgu_r, {n, 2 * c}), view(dact, {n, c}), view(gate_up, {n, 2 * c}));
      fast.swiglu_backward(view(dgu_f, {n, 2 * c}), view(dact, {n, c}), view(gate_up, {n, 2 * c}));
      check_close("swiglu dgate_up", dgu_f, dgu_r);

      // RMSNorm forward, and its backward's accumulating dx and dweight.
      std::vector<float> x = random_vector(n * c, 3, 2.0), w = random_vector(c, 4);
      std::vector<float> y_r(n * c), y_f(n * c), rstd_r(n), rstd_f(n);
      ref.rmsnorm_forward(view(y_r, {n, c}), view(rstd_r, {n}), view(x, {n, c}), view(w, {c}), 1e-5);
      fast.rmsnorm_forward(view(y_f, {n, c}), view(rstd_f, {n}), view(x, {n, c}), view(w, {c}), 1e-5);
      check_close("rmsnorm out", y_f, y_r);
      check_close("rmsnorm rstd", rstd_f, rstd_r);
      std::vector<float> dy = random_vector(n * c, 5);
      std::vector<float> dx_r = random_vector(n * c, 6), dx_f = dx_r;
      std::vector<float> dw_r = random_vector(c, 8), dw_f = dw_r;
      ref.rmsnorm_backward(view(dx_r, {n, c}), view(dw_r, {c}), view(dy, {n, c}), view(x, {n, c}),
                           view(w, {c}), view(rstd_r, {n}));
      fast.rmsnorm_backward(view(dx_f, {n, c}), view(dw_f, {c}), view(dy, {n, c}), view(x, {n, c}),
                            view(w, {c}), view(rstd_r, {n}));
      check_close("rmsnorm dx", dx_f, dx_r);
      check_close("rmsnorm dweight", dw_f, dw_r);

      // Embedding scatter: the same summation order, so the same bits.
      const int64_t v = 5;
      std::vector<int32_t> tokens(n);
      for (int64_t i = 0; i < n; ++i) tokens[i] = static_cast<int32_t>((i * 7 + 3) % v);
      std::vector<float> dtable_r = random_vector(v * c, 9), dtable_f = dtable_r;
      ref.embedding_backward(view(dtable_r, {v, c}), view(dy, {n, c}), view(tokens, {n}));
      fast.embedding_backward(view(dtable_f, {v, c}), view(dy, {n, c}), view(tokens, {n}));
      CHECK(dtable_f == dtable_r);
    }
  }
}

TEST_CASE("fast cross-entropy matches the reference, in place and with ignored rows",
          "[ops][fast]") {
  CpuBackend ref(CpuKernels::reference), fast(CpuKernels::fast);
  const int64_t n = 9, v = 203;
  std::vector<float> logits = random_vector(n * v, 21, 4.0);
  std::vector<int32_t> targets(n);
  std::vector<float> weights(n, 1.0f);
  for (int64_t i = 0; i < n; ++i) targets[i] = static_cast<int32_t>((i * 37) % v);
  weights[2] = 0.0f;
  targets[2] = -5;  // never read: weight 0
  weights[5] = 0.5f;
  std::vector<float> loss_r(n), loss_f(n), dl_r(n * v), dl_f = logits;  // fast: in place
  ref.cross_entropy_forward_backward(view(loss_r, {n}), view(dl_r, {n, v}), view(logits, {n, v}),
                                     view(targets, {n}), view(weights, {n}), 0.25);
  fast.cross_entropy_forward_backward(view(loss_f, {n}), view(dl_f, {n, v}), view(dl_f, {n, v}),
                                      view(targets, {n}), view(weights, {n}), 0.25);
  check_close("losses", loss_f, loss_r);
  check_close("dlogits", dl_f, dl_r);
  CHECK(loss_f[2] == 0.0f);
}

TEST_CASE("fast adamw matches the reference", "[ops][fast]") {
  CpuBackend ref(CpuKernels::reference), fast(CpuKernels::fast);
  const int64_t n = 40000;  // several chunks and a ragged end
  std::vector<float> p_r = random_vector(n, 31), g = random_vector(n, 32);
  std::vector<float> m_r = random_vector(n, 33, 0.1), v_r(n);
  for (int64_t i = 0; i < n; ++i) v_r[i] = 0.01f * g[i] * g[i];
  std::vector<float> p_f = p_r, m_f = m_r, v_f = v_r;
  const AdamWStep hp{3e-3, 0.9, 0.95, 1e-8, 0.1, 7};
  ref.adamw_update(view(p_r, {n}), view(g, {n}), view(m_r, {n}), view(v_r, {n}), hp, Tensor{});
  fast.adamw_update(view(p_f, {n}), view(g, {n}), view(m_f, {n}), view(v_f, {n}), hp, Tensor{});
  check_close("param", p_f, p_r);
  check_close("m", m_f, m_r);
  check_close("v", v_f, v_r);
}

TEST_CASE("fast kernels give the same bits with 1 and 2 threads", "[ops][fast]") {
  CpuBackend fast(CpuKernels::fast);
  const AttentionCase c{2, 150, 4, 2, 16};
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const AttentionResult one = run_attention(fast, c);
  omp_set_num_threads(2);
  const AttentionResult two = run_attention(fast, c);
  omp_set_num_threads(saved);
  CHECK(one.out == two.out);
  CHECK(one.lse == two.lse);
  CHECK(one.dqkv == two.dqkv);
}

TEST_CASE("the vectorisable exp is within 3e-7 relative of exp", "[ops][fast]") {
  double worst = 0;
  for (int i = -870000; i <= 880000; i += 7) {
    const float x = static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::fast::exp_approx(x) - want) / want);
  }
  INFO("worst relative error " << worst);
  CHECK(worst < 3e-7);
}

TEST_CASE("make_backend(\"cpu\") runs the fast kernels", "[ops][fast]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  auto* cpu = dynamic_cast<CpuBackend*>(be.get());
  REQUIRE(cpu != nullptr);
  CHECK(cpu->kernels() == CpuKernels::fast);
}
