// The whole f32 model on the CUDA backend: one forward/backward against the CPU backend
// from the same weights and batch (loss and every parameter gradient within 1e-5 normwise),
// and two identical 10-step training loops (forward, backward, clipping, AdamW) that must
// end with bit-identical weights. Without a CUDA build or a GPU the tests report a skip.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/model/llama.hpp"
#include "meap/core/rng.hpp"
#include "fixtures.hpp"

#ifdef MEAP_WITH_CUDA
using namespace meap;

namespace {

// ||a - b|| / ||b|| in double; NaN fails.
double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::isnan(diff) ? INFINITY : std::sqrt(diff) / std::max(std::sqrt(ref), 1e-300);
}

// A tiny grouped-query model: head dim 16, two query heads per kv head, odd sequence length.
ModelConfig tiny_gqa(bool tied) {
  return meap_test::tiny_llama(300, 64, 96, 33, ModelConfig{}.init_std, tied);
}

constexpr int64_t kB = 2, kT = 33;

struct Batch {
  std::vector<int32_t> inputs, targets;
  std::vector<float> weights;
};

// Random tokens; every fifth position has loss weight 0 (and an id no kernel may read).
Batch random_batch(int64_t v, uint64_t seed) {
  Batch b;
  for (int64_t i = 0; i < kB * kT; ++i) {
    const auto r = philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, philox_key(seed));
    const bool ignored = r[2] % 5 == 0;
    b.inputs.push_back(static_cast<int32_t>(r[0] % v));
    b.targets.push_back(ignored ? -1 : static_cast<int32_t>(r[1] % v));
    b.weights.push_back(ignored ? 0.0f : 1.0f);
  }
  return b;
}

std::vector<float> to_host(Backend& be, const Tensor& t) {
  std::vector<float> v(t.numel());
  std::memset(v.data(), 0xff, v.size() * 4);
  be.copy_to_host(v.data(), t);
  return v;
}

// Backend memory for the AdamW moments, freed on scope exit.
struct Moments {
  Backend& be;
  Tensor m, v;
  Moments(Backend& b, int64_t n) : be(b) {
    m = Tensor(be.allocate(n * 4), DType::f32, be.device(), {n});
    v = Tensor(be.allocate(n * 4), DType::f32, be.device(), {n});
    be.fill_zero(m);
    be.fill_zero(v);
  }
  ~Moments() {
    be.deallocate(m.data);
    be.deallocate(v.data);
  }
  Tensor at(const Tensor& flat, int64_t offset, int64_t n) const {
    return Tensor(static_cast<float*>(flat.data) + offset, DType::f32, flat.device, {n});
  }
};

// `steps` optimizer steps on one batch, as the trainer does them (clip at norm 1, AdamW with
// decay off for the norm gains). Returns the final flat parameters; the losses go to *losses.
std::vector<float> train(Backend& be, const ModelConfig& cfg, const Batch& batch, int steps,
                         std::vector<double>* losses) {
  Llama model(cfg, be, kB, kT, DType::f32);
  model.init_weights(77);
  const Tensor grads = model.flat_gradients();
  Moments mom(be, model.flat_parameters().numel());
  for (int step = 1; step <= steps; ++step) {
    model.zero_grad();
    losses->push_back(model.forward(batch.inputs.data(), batch.targets.data(),
                                    batch.weights.data(), kB, kT));
    model.backward();
    const double norm = std::sqrt(be.sum_squares(grads));
    if (norm > 1.0) be.scale(grads, 1.0 / norm);
    for (const NamedParameter& p : model.parameters()) {
      const AdamWStep hp{1e-2, 0.9, 0.95, 1e-8, p.weight_decay ? 0.1 : 0.0, step};
      const int64_t n = p.value.numel();
      be.adamw_update(p.value, p.grad, mom.at(mom.m, p.offset, n), mom.at(mom.v, p.offset, n), hp,
                      Tensor{});
    }
  }
  return to_host(be, model.flat_parameters());
}

#define MEAP_SKIP_WITHOUT_GPU()           \
  if (!meap::cuda_available()) {          \
    WARN("SKIPPED: no CUDA GPU visible"); \
    return;                               \
  }

}  // namespace
#endif

TEST_CASE("f32 Llama step on CUDA matches the CPU: loss and every gradient", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  auto gpu = make_backend(meap::DeviceChoice::cuda);
  REQUIRE(gpu->name() == "cuda");
  for (bool tied : {false, true}) {
    INFO((tied ? "tied" : "untied") << " head");
    const ModelConfig cfg = tiny_gqa(tied);
    const Batch batch = random_batch(cfg.vocab_size, 4);
    Llama m_cpu(cfg, *cpu, kB, kT, DType::f32), m_gpu(cfg, *gpu, kB, kT, DType::f32);
    m_cpu.init_weights(31);
    m_gpu.init_weights(31);
    const double l_cpu = m_cpu.forward(batch.inputs.data(), batch.targets.data(),
                                       batch.weights.data(), kB, kT);
    m_cpu.backward();
    const double l_gpu = m_gpu.forward(batch.inputs.data(), batch.targets.data(),
                                       batch.weights.data(), kB, kT);
    m_gpu.backward();
    INFO("loss cpu " << l_cpu << " cuda " << l_gpu);
    CHECK(std::abs(l_gpu - l_cpu) <= 1e-5 * std::abs(l_cpu));
    REQUIRE(m_cpu.parameters().size() == m_gpu.parameters().size());
    double worst = 0;
    for (size_t k = 0; k < m_cpu.parameters().size(); ++k) {
      const NamedParameter& pc = m_cpu.parameters()[k];
      const NamedParameter& pg = m_gpu.parameters()[k];
      const float* g = pc.grad.as<float>();
      const std::vector<float> ref(g, g + pc.grad.numel());
      const double err = rel_error(to_host(*gpu, pg.grad), ref);
      INFO(pc.name << " gradient relative error " << err);
      CHECK(err <= 1e-5);
      worst = std::max(worst, err);
    }
    std::printf("cuda vs cpu model step (%s head): loss %.8f vs %.8f, worst gradient error %.3g\n",
                tied ? "tied" : "untied", l_gpu, l_cpu, worst);
  }
#endif
}

TEST_CASE("two identical 10-step f32 training loops on CUDA end bit-identical", "[gpu]") {
#ifndef MEAP_WITH_CUDA
  WARN("SKIPPED: this build has no CUDA backend");
#else
  MEAP_SKIP_WITHOUT_GPU();
  const ModelConfig cfg = tiny_gqa(false);
  const Batch batch = random_batch(cfg.vocab_size, 8);
  std::vector<double> losses_a, losses_b;
  std::vector<float> weights_a, weights_b;
  {
    auto gpu = make_backend(meap::DeviceChoice::cuda);
    weights_a = train(*gpu, cfg, batch, 10, &losses_a);
  }
  {
    auto gpu = make_backend(meap::DeviceChoice::cuda);  // a fresh backend: new stream, plans and scratch
    weights_b = train(*gpu, cfg, batch, 10, &losses_b);
  }
  REQUIRE(weights_a.size() == weights_b.size());
  CHECK(std::memcmp(weights_a.data(), weights_b.data(), weights_a.size() * 4) == 0);
  CHECK(losses_a == losses_b);
  // Ten steps on one batch must learn it: the loss falls well below its start.
  INFO("loss " << losses_a.front() << " -> " << losses_a.back());
  CHECK(losses_a.back() < 0.9 * losses_a.front());
#endif
}
