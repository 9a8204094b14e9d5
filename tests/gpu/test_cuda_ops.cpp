// Every op of the CUDA backend against the CPU backend on fresh random inputs: the fp32 path
// within 1e-5 normwise relative error, the bf16 path within 1e-2 (the CPU reference runs in
// f32 on the bf16-rounded inputs). Outputs are poisoned (0xff) before each run, sizes are
// odd, and the ops without atomics are checked bit-identical from run to run. Without a
// CUDA build or a GPU every test reports that it skipped.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

#ifdef MEAP_WITH_CUDA
#include "gpu/cuda_test_util.hpp"

using namespace meap;
using namespace meap::cuda_test;

namespace {

constexpr Prec kPrecs[] = {Prec::f32, Prec::bf16};

// Token ids in [0, v) with many repeats: most from a small set, a few anywhere.
std::vector<int32_t> random_tokens(int64_t n, int64_t v, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto r = philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, philox_key(seed));
    t[i] = static_cast<int32_t>(r[0] % 4 == 0 ? r[1] % v : r[1] % 7);
  }
  return t;
}

#define MEAP_SKIP_WITHOUT_GPU()              \
  if (!meap::cuda_available()) {             \
    WARN("SKIPPED: no CUDA GPU visible");    \
    return;                                  \
  }

}  // namespace
#endif

TEST_CASE("cuda embedding forward/backward match the CPU and the backward is deterministic", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t n = 2 * 37, v = 301, c = 67;
  const std::vector<int32_t> tokens = random_tokens(n, v, 5);
  DevTensor d_tokens(gpu, DType::i32, {n});
  d_tokens.set_i32(tokens);
  for (Prec p : kPrecs) {
    INFO("precision " << prec_name(p));
    const DType dt = storage(p);
    std::vector<float> table = rounded(randn(v * c, 1), p);
    std::vector<int32_t> tok_copy = tokens;
    std::vector<float> out_ref(n * c);
    cpu->embedding_forward(host_f32(out_ref, {n, c}),
                           Tensor(tok_copy.data(), DType::i32, Device::cpu, {n}),
                           host_f32(table, {v, c}));
    DevTensor d_table(gpu, dt, {v, c}), d_out(gpu, dt, {n, c});
    d_table.set(table);
    gpu.embedding_forward(d_out, d_tokens, d_table);
    CHECK(d_out.get() == out_ref);  // a gather: exact

    std::vector<float> dout = rounded(randn(n * c, 2), p);
    std::vector<float> dtable0 = randn(v * c, 3);  // dtable accumulates (+=)
    std::vector<float> dtable_ref = dtable0;
    cpu->embedding_backward(host_f32(dtable_ref, {v, c}), host_f32(dout, {n, c}),
                            Tensor(tok_copy.data(), DType::i32, Device::cpu, {n}));
    DevTensor d_dout(gpu, dt, {n, c}), d_dtable(gpu, DType::f32, {v, c});
    d_dout.set(dout);
    d_dtable.set(dtable0);
    gpu.embedding_backward(d_dtable, d_dout, d_tokens);
    const auto first = d_dtable.bytes();
    CHECK(rel_error(d_dtable.get(), dtable_ref) <= 1e-5);
    d_dtable.poison();
    d_dtable.set(dtable0);
    gpu.embedding_backward(d_dtable, d_dout, d_tokens);
    CHECK(d_dtable.bytes() == first);
  }
#endif
}

TEST_CASE("cuda rmsnorm forward/backward match the CPU and the backward is deterministic", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t n = 197, c = 131;  // 197 rows: several chunks of the dweight reduction
  const double eps = 1e-5;
  for (Prec p : kPrecs) {
    INFO("precision " << prec_name(p));
    const DType dt = storage(p);
    std::vector<float> x = rounded(randn(n * c, 10), p);
    std::vector<float> w = rounded(randn(c, 11, 0.5), p);
    for (float& wi : w) wi += 1.0f;
    w = rounded(w, p);
    std::vector<float> out_ref(n * c), rstd_ref(n);
    cpu->rmsnorm_forward(host_f32(out_ref, {n, c}), host_f32(rstd_ref, {n}), host_f32(x, {n, c}),
                         host_f32(w, {c}), eps);
    DevTensor d_x(gpu, dt, {n, c}), d_w(gpu, dt, {c}), d_out(gpu, dt, {n, c}),
        d_rstd(gpu, DType::f32, {n});
    d_x.set(x);
    d_w.set(w);
    gpu.rmsnorm_forward(d_out, d_rstd, d_x, d_w, eps);
    CHECK(rel_error(d_out.get(), out_ref) <= tolerance(p));
    CHECK(rel_error(d_rstd.get(), rstd_ref) <= 1e-5);

    std::vector<float> dout = rounded(randn(n * c, 12), p);
    std::vector<float> dx0 = rounded(randn(n * c, 13), p);  // dx accumulates (+=)
    std::vector<float> dw0 = randn(c, 14);                   // so does dweight
    std::vector<float> dx_ref = dx0, dw_ref = dw0;
    cpu->rmsnorm_backward(host_f32(dx_ref, {n, c}), host_f32(dw_ref, {c}), host_f32(dout, {n, c}),
                          host_f32(x, {n, c}), host_f32(w, {c}), host_f32(rstd_ref, {n}));
    DevTensor d_dout(gpu, dt, {n, c}), d_dx(gpu, dt, {n, c}), d_dw(gpu, DType::f32, {c});
    d_dout.set(dout);
    d_dx.set(dx0);
    d_dw.set(dw0);
    gpu.rmsnorm_backward(d_dx, d_dw, d_dout, d_x, d_w, d_rstd);
    CHECK(rel_error(d_dx.get(), dx_ref) <= tolerance(p));
    CHECK(rel_error(d_dw.get(), dw_ref) <= tolerance(p));
    const auto dx_bytes = d_dx.bytes(), dw_bytes = d_dw.bytes();
    d_dx.set(dx0);
    d_dw.poison();
    d_dw.set(dw0);
    gpu.rmsnorm_backward(d_dx, d_dw, d_dout, d_x, d_w, d_rstd);
    CHECK(d_dx.bytes() == dx_bytes);
    CHECK(d_dw.bytes() == dw_bytes);
  }
#endif
}

TEST_CASE("cuda matmul forward/backward (cuBLASLt) match the CPU", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  struct Shape {
    int64_t n, ic, oc;
  };
  // Odd sizes (unaligned leading dimensions), then the model's aligned kind.
  for (const Shape s : {Shape{37, 45, 29}, Shape{66, 64, 300}, Shape{128, 96, 64}}) {
    for (Prec p : kPrecs) {
      INFO("precision " << prec_name(p) << ", n " << s.n << " ic " << s.ic << " oc " << s.oc);
      const DType dt = storage(p);
      std::vector<float> x = rounded(randn(s.n * s.ic, 20), p);
      std::vector<float> w = rounded(randn(s.oc * s.ic, 21, 0.1), p);
      std::vector<float> out_ref(s.n * s.oc);
      cpu->matmul_forward(host_f32(out_ref, {s.n, s.oc}), host_f32(x, {s.n, s.ic}),
                          host_f32(w, {s.oc, s.ic}));
      DevTensor d_x(gpu, dt, {s.n, s.ic}), d_w(gpu, dt, {s.oc, s.ic}),
          d_out(gpu, dt, {s.n, s.oc});
      d_x.set(x);
      d_w.set(w);
      gpu.matmul_forward(d_out, d_x, d_w);
      CHECK(rel_error(d_out.get(), out_ref) <= tolerance(p));

      std::vector<float> dout = rounded(randn(s.n * s.oc, 22), p);
      std::vector<float> dw0 = randn(s.oc * s.ic, 23);  // dw accumulates (+=)
      std::vector<float> dx_ref(s.n * s.ic), dw_ref = dw0;
      cpu->matmul_backward(host_f32(dx_ref, {s.n, s.ic}), host_f32(dw_ref, {s.oc, s.ic}),
                           host_f32(dout, {s.n, s.oc}), host_f32(x, {s.n, s.ic}),
                           host_f32(w, {s.oc, s.ic}));
      DevTensor d_dout(gpu, dt, {s.n, s.oc}), d_dx(gpu, dt, {s.n, s.ic}),
          d_dw(gpu, DType::f32, {s.oc, s.ic});
      d_dout.set(dout);
      d_dw.set(dw0);
      gpu.matmul_backward(d_dx, d_dw, d_dout, d_x, d_w);
      CHECK(rel_error(d_dx.get(), dx_ref) <= tolerance(p));
      CHECK(rel_error(d_dw.get(), dw_ref) <= tolerance(p));
      // dx empty: only dw, accumulated once more.
      std::vector<float> dw_ref2 = dw_ref;
      cpu->matmul_backward(Tensor{}, host_f32(dw_ref2, {s.oc, s.ic}), host_f32(dout, {s.n, s.oc}),
                           host_f32(x, {s.n, s.ic}), host_f32(w, {s.oc, s.ic}));
      gpu.matmul_backward(Tensor{}, d_dw, d_dout, d_x, d_w);
      CHECK(rel_error(d_dw.get(), dw_ref2) <= tolerance(p));
    }
  }
#endif
}

TEST_CASE("cuda rope forward/backward match the CPU on the rotated heads only", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t b = 2, t = 37, h = 5, d = 18, half = d / 2;
  const int rot = 3;  // heads 3 and 4 (the "values") stay as they are
  std::vector<float> cos(t * half), sin(t * half);
  for (int64_t ti = 0; ti < t; ++ti)
    for (int64_t j = 0; j < half; ++j) {
      const double a = ti * std::pow(10000.0, -2.0 * j / d);
      cos[ti * half + j] = static_cast<float>(std::cos(a));
      sin[ti * half + j] = static_cast<float>(std::sin(a));
    }
  DevTensor d_cos(gpu, DType::f32, {t, half}), d_sin(gpu, DType::f32, {t, half});
  d_cos.set(cos);
  d_sin.set(sin);
  for (Prec p : kPrecs) {
    INFO("precision " << prec_name(p));
    const DType dt = storage(p);
    const std::vector<float> x = rounded(randn(b * t * h * d, 30), p);
    for (bool inverse : {false, true}) {
      INFO((inverse ? "backward" : "forward"));
      std::vector<float> ref = x;
      const Tensor href = host_f32(ref, {b, t, h, d});
      if (inverse)
        cpu->rope_backward(href, rot, host_f32(cos, {t, half}), host_f32(sin, {t, half}));
      else
        cpu->rope_forward(href, rot, host_f32(cos, {t, half}), host_f32(sin, {t, half}));
      DevTensor d_x(gpu, dt, {b, t, h, d});
      d_x.set(x);
      if (inverse)
        gpu.rope_backward(d_x, rot, d_cos, d_sin);
      else
        gpu.rope_forward(d_x, rot, d_cos, d_sin);
      const std::vector<float> got = d_x.get();
      CHECK(rel_error(got, ref) <= tolerance(p));
      bool untouched = true;  // heads >= rot are bit-for-bit the input
      for (int64_t row = 0; row < b * t; ++row)
        for (int64_t e = rot * d; e < h * d; ++e)
          untouched = untouched && got[row * h * d + e] == x[row * h * d + e];
      CHECK(untouched);
    }
  }
#endif
}

TEST_CASE("cuda reference attention forward/backward match the CPU and are deterministic",
          "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  struct Shape {
    int64_t b, t;
    int hq, hkv;
    int64_t d;
  };
  // T above the kernels' 64-row chunk, odd head dims, GQA groups of 2 and 6, plain MHA.
  for (const Shape s : {Shape{2, 77, 4, 2, 18}, Shape{1, 37, 3, 3, 130}, Shape{2, 70, 6, 1, 64}}) {
    for (Prec p : kPrecs) {
      INFO("precision " << prec_name(p) << ", B " << s.b << " T " << s.t << " Hq " << s.hq
                        << " Hkv " << s.hkv << " D " << s.d);
      const DType dt = storage(p);
      const int64_t H = s.hq + 2 * s.hkv;
      std::vector<float> qkv = rounded(randn(s.b * s.t * H * s.d, 40), p);
      std::vector<float> out_ref(s.b * s.t * s.hq * s.d), lse_ref(s.b * s.hq * s.t);
      cpu->attention_forward(host_f32(out_ref, {s.b, s.t, s.hq, s.d}),
                             host_f32(lse_ref, {s.b, s.hq, s.t}),
                             host_f32(qkv, {s.b, s.t, H, s.d}), s.hq, s.hkv);
      DevTensor d_qkv(gpu, dt, {s.b, s.t, H, s.d}), d_out(gpu, dt, {s.b, s.t, s.hq, s.d}),
          d_lse(gpu, DType::f32, {s.b, s.hq, s.t});
      d_qkv.set(qkv);
      gpu.attention_forward(d_out, d_lse, d_qkv, s.hq, s.hkv);
      CHECK(rel_error(d_out.get(), out_ref) <= tolerance(p));
      CHECK(rel_error(d_lse.get(), lse_ref) <= 1e-5);

      std::vector<float> dout = rounded(randn(s.b * s.t * s.hq * s.d, 41), p);
      std::vector<float> dqkv_ref(qkv.size());
      cpu->attention_backward(host_f32(dqkv_ref, {s.b, s.t, H, s.d}),
                              host_f32(dout, {s.b, s.t, s.hq, s.d}),
                              host_f32(qkv, {s.b, s.t, H, s.d}),
                              host_f32(out_ref, {s.b, s.t, s.hq, s.d}),
                              host_f32(lse_ref, {s.b, s.hq, s.t}), s.hq, s.hkv);
      DevTensor d_dout(gpu, dt, {s.b, s.t, s.hq, s.d}), d_dqkv(gpu, dt, {s.b, s.t, H, s.d});
      d_dout.set(dout);
      gpu.attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_lse, s.hq, s.hkv);
      CHECK(rel_error(d_dqkv.get(), dqkv_ref) <= tolerance(p));
      const auto first = d_dqkv.bytes();
      d_dqkv.poison();
      gpu.attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_lse, s.hq, s.hkv);
      CHECK(d_dqkv.bytes() == first);
    }
  }
#endif
}

TEST_CASE("cuda swiglu forward/backward and add match the CPU", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t n = 37, f = 53;
  for (Prec p : kPrecs) {
    INFO("precision " << prec_name(p));
    const DType dt = storage(p);
    std::vector<float> gu = rounded(randn(n * 2 * f, 50, 2.0), p);
    std::vector<float> out_ref(n * f);
    cpu->swiglu_forward(host_f32(out_ref, {n, f}), host_f32(gu, {n, 2 * f}));
    DevTensor d_gu(gpu, dt, {n, 2 * f}), d_out(gpu, dt, {n, f});
    d_gu.set(gu);
    gpu.swiglu_forward(d_out, d_gu);
    CHECK(rel_error(d_out.get(), out_ref) <= tolerance(p));

    std::vector<float> dout = rounded(randn(n * f, 51), p);
    std::vector<float> dgu_ref(n * 2 * f);
    cpu->swiglu_backward(host_f32(dgu_ref, {n, 2 * f}), host_f32(dout, {n, f}),
                         host_f32(gu, {n, 2 * f}));
    DevTensor d_dout(gpu, dt, {n, f}), d_dgu(gpu, dt, {n, 2 * f});
    d_dout.set(dout);
    gpu.swiglu_backward(d_dgu, d_dout, d_gu);
    CHECK(rel_error(d_dgu.get(), dgu_ref) <= tolerance(p));

    // add, in place as the model uses it (out aliases a).
    std::vector<float> a = rounded(randn(n * f, 52), p), b = rounded(randn(n * f, 53), p);
    std::vector<float> sum_ref(n * f);
    cpu->add_forward(host_f32(sum_ref, {n * f}), host_f32(a, {n * f}), host_f32(b, {n * f}));
    DevTensor d_a(gpu, dt, {n * f}), d_b(gpu, dt, {n * f});
    d_a.set(a);
    d_b.set(b);
    gpu.add_forward(d_a, d_a, d_b);
    CHECK(rel_error(d_a.get(), sum_ref) <= tolerance(p));
  }
#endif
}

TEST_CASE("cuda cross-entropy matches the CPU, skips weight-0 rows and may alias the logits",
          "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t n = 41;
  for (int64_t v : {int64_t{301}, int64_t{2053}}) {  // below and above one block's threads
    std::vector<int32_t> targets(n);
    std::vector<float> weights(n);
    double weight_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto r = philox4x32({static_cast<uint32_t>(i), 1, 0, 0}, philox_key(9));
      weights[i] = r[0] % 4 == 0 ? 0.0f : (r[0] % 4 == 1 ? 0.5f : 1.0f);
      // Weight-0 positions get ids no kernel may read.
      targets[i] = weights[i] == 0.0f ? (i % 2 ? -5 : 1 << 30) : static_cast<int32_t>(r[1] % v);
      weight_sum += weights[i];
    }
    const double grad_scale = 1.0 / weight_sum;
    for (Prec p : kPrecs) {
      for (bool alias : {false, true}) {
        INFO("precision " << prec_name(p) << ", V " << v << (alias ? ", aliased" : ""));
        const DType dt = storage(p);
        std::vector<float> logits = rounded(randn(n * v, 60, 3.0), p);
        std::vector<float> losses_ref(n), dlogits_ref(n * v);
        std::vector<int32_t> t_copy = targets;
        cpu->cross_entropy_forward_backward(
            host_f32(losses_ref, {n}), host_f32(dlogits_ref, {n, v}), host_f32(logits, {n, v}),
            Tensor(t_copy.data(), DType::i32, Device::cpu, {n}), host_f32(weights, {n}),
            grad_scale);
        DevTensor d_logits(gpu, dt, {n, v}), d_dlogits(gpu, dt, {n, v}),
            d_losses(gpu, DType::f32, {n}), d_targets(gpu, DType::i32, {n}),
            d_weights(gpu, DType::f32, {n});
        d_logits.set(logits);
        d_targets.set_i32(targets);
        d_weights.set(weights);
        const Tensor& dz = alias ? d_logits.t() : d_dlogits.t();
        gpu.cross_entropy_forward_backward(d_losses, dz, d_logits, d_targets, d_weights,
                                           grad_scale);
        const std::vector<float> losses = d_losses.get();
        const std::vector<float> dlogits = alias ? d_logits.get() : d_dlogits.get();
        CHECK(rel_error(losses, losses_ref) <= 1e-5);
        CHECK(rel_error(dlogits, dlogits_ref) <= tolerance(p));
        bool zero_rows = true;
        for (int64_t i = 0; i < n; ++i) {
          if (weights[i] != 0.0f) continue;
          zero_rows = zero_rows && losses[i] == 0.0f;
          for (int64_t j = 0; j < v; ++j) zero_rows = zero_rows && dlogits[i * v + j] == 0.0f;
        }
        CHECK(zero_rows);
      }
    }
  }
#endif
}

TEST_CASE("cuda sum_squares is deterministic and matches the CPU, and so does scale", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{(1 << 20) | 37}, int64_t{(1 << 24) + 3}}) {
    INFO("n " << n);
    std::vector<float> x = randn(n, 70);
    const double ref = cpu->sum_squares(host_f32(x, {n}));
    DevTensor d_x(gpu, DType::f32, {n});
    d_x.set(x);
    const double a = gpu.sum_squares(d_x), b = gpu.sum_squares(d_x);
    CHECK(std::abs(a - ref) <= 1e-12 * ref);
    CHECK(a == b);  // bit-identical (doubles compared exactly)

    const double factor = 0.37;
    cpu->scale(host_f32(x, {n}), factor);
    gpu.scale(d_x, factor);
    CHECK(d_x.get() == x);  // one rounded multiply each: exact
  }
#endif
}

TEST_CASE("cuda adamw matches the CPU and writes the bf16 working copy", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  CudaBackend gpu;
  const int64_t n = 100003;
  std::vector<float> p = randn(n, 80, 0.05), g = randn(n, 81, 0.01);
  std::vector<float> m = randn(n, 82, 0.001), v = randn(n, 83, 0.001);
  for (float& vi : v) vi = vi * vi;  // second moments are non-negative
  DevTensor d_p(gpu, DType::f32, {n}), d_g(gpu, DType::f32, {n}), d_m(gpu, DType::f32, {n}),
      d_v(gpu, DType::f32, {n}), d_copy(gpu, DType::bf16, {n});
  d_p.set(p);
  d_g.set(g);
  d_m.set(m);
  d_v.set(v);
  const AdamWStep hp{3e-3, 0.9, 0.95, 1e-8, 0.1, 3};
  cpu->adamw_update(host_f32(p, {n}), host_f32(g, {n}), host_f32(m, {n}), host_f32(v, {n}), hp,
                    Tensor{});
  gpu.adamw_update(d_p, d_g, d_m, d_v, hp, d_copy);
  const std::vector<float> got = d_p.get();
  CHECK(rel_error(got, p) <= 1e-5);
  CHECK(rel_error(d_m.get(), m) <= 1e-5);
  CHECK(rel_error(d_v.get(), v) <= 1e-5);
  std::vector<uint16_t> copy(n, 0);
  gpu.copy_to_host(copy.data(), d_copy);
  bool copy_ok = true;
  for (int64_t i = 0; i < n; ++i) copy_ok = copy_ok && copy[i] == f32_to_bf16(got[i]);
  CHECK(copy_ok);
  // Only f32 masters and a bf16 copy of their size.
  DevTensor small_copy(gpu, DType::bf16, {n - 1});
  CHECK_THROWS_WITH(gpu.adamw_update(d_p, d_g, d_m, d_v, hp, small_copy),
                    Catch::Contains("working copy"));
  CHECK_THROWS_WITH(gpu.adamw_update(d_copy, d_g, d_m, d_v, hp, Tensor{}),
                    Catch::Contains("must be F32"));
#endif
}

TEST_CASE("cuda cast rounds like meap::f32_to_bf16 and refuses f64", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  CudaBackend gpu;
  std::vector<float> src = randn(4099, 90, 100.0);
  // Ties to even in both directions, infinities, NaN, signed zero, tiny values.
  const float specials[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), INFINITY,
                            -INFINITY,      NAN,                -0.0f,              1e-40f};
  for (size_t i = 0; i < std::size(specials); ++i) src[i] = specials[i];
  const int64_t n = static_cast<int64_t>(src.size());
  DevTensor d_src(gpu, DType::f32, {n}), d_half(gpu, DType::bf16, {n}), d_back(gpu, DType::f32, {n});
  d_src.set(src);
  gpu.cast(d_half, d_src);
  std::vector<uint16_t> half(n);
  gpu.copy_to_host(half.data(), d_half);
  bool bits_ok = true;
  for (int64_t i = 0; i < n; ++i) bits_ok = bits_ok && half[i] == f32_to_bf16(src[i]);
  CHECK(bits_ok);
  gpu.cast(d_back, d_half);
  std::vector<float> back(n);
  gpu.copy_to_host(back.data(), d_back);
  bool widen_ok = true;
  for (int64_t i = 0; i < n; ++i) {
    const float want = bf16_to_f32(half[i]);
    widen_ok = widen_ok && (std::memcmp(&back[i], &want, 4) == 0);
  }
  CHECK(widen_ok);
  DevTensor d_copy(gpu, DType::f32, {n});
  gpu.cast(d_copy, d_src);  // same dtype: a copy
  CHECK(d_copy.bytes() == d_src.bytes());

  DevTensor d_f64(gpu, DType::f64, {n});
  CHECK_THROWS_WITH(gpu.cast(d_f64, d_src), Catch::Contains("not supported on the CUDA backend"));
  CHECK_THROWS(gpu.cast(d_half, DevTensor(gpu, DType::f32, {n - 1}).t()));
#endif
}

TEST_CASE("cuda ops refuse host tensors, f64 and mixed dtypes with clear errors", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  CudaBackend gpu;
  const int64_t n = 8, c = 16;
  DevTensor x(gpu, DType::f32, {n, c}), w(gpu, DType::f32, {c}), out(gpu, DType::f32, {n, c}),
      rstd(gpu, DType::f32, {n}), xb(gpu, DType::bf16, {n, c}), x64(gpu, DType::f64, {n, c}),
      w64(gpu, DType::f64, {c}), o64(gpu, DType::f64, {n, c}), r64(gpu, DType::f64, {n});
  std::vector<float> host(n * c);
  CHECK_THROWS_WITH(gpu.rmsnorm_forward(out, rstd, host_f32(host, {n, c}), w, 1e-5),
                    Catch::Contains("host memory"));
  CHECK_THROWS_WITH(gpu.rmsnorm_forward(out, rstd, xb, w, 1e-5), Catch::Contains("mixed dtypes"));
  CHECK_THROWS_WITH(gpu.rmsnorm_forward(o64, rstd, x64, w64, 1e-5),
                    Catch::Contains("F64 runs on the CPU backend only"));
  DevTensor dwb(gpu, DType::bf16, {c});
  CHECK_THROWS_WITH(gpu.rmsnorm_backward(out, dwb, x, x, w, rstd),
                    Catch::Contains("dweight (a weight gradient) must be F32"));
  DevTensor wrong(gpu, DType::f32, {n + 1});
  CHECK_THROWS(gpu.rmsnorm_forward(out, wrong, x, w, 1e-5));
  (void)r64;
#endif
}
