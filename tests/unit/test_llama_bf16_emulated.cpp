// A bf16 Llama without a GPU: on the bf16-emulation backend (tests/bf16_emulation.hpp), which
// checks every op's dtypes against backend.hpp's bf16 contract and rounds to bf16 between
// ops. Proves the model's mixed-precision plumbing (which tensor is which dtype, the fp32
// master, the working copy, weights files of the master, bf16 logits in the sampler)
// before the CUDA backend exists; tests/gpu/test_mixed_precision_step.cpp repeats the
// training comparison on a real GPU.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bf16_emulation.hpp"
#include "meap/model/llama_io.hpp"
#include "meap/model/sampler.hpp"
#include "train_steps.hpp"

using namespace meap;
using namespace meap::testing;

namespace {

template <class T>
std::vector<T> host_copy(Backend& be, const Tensor& t) {
  std::vector<T> out(t.numel());
  be.copy_to_host(out.data(), t);
  return out;
}

}  // namespace

TEST_CASE("bf16 model: bf16 working copy, fp32 master, f32 gradients", "[model][precision]") {
  const ModelConfig cfg = small_gqa();
  Bf16EmulationBackend be;
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  Llama model(cfg, be, 2, 16, DType::bf16), ref(cfg, *cpu, 2, 16, DType::f32);
  CHECK(model.dtype() == DType::bf16);
  CHECK(model.grad_dtype() == DType::f32);
  CHECK(model.flat_parameters().dtype == DType::bf16);
  CHECK(model.flat_master().dtype == DType::f32);
  CHECK(model.flat_gradients().dtype == DType::f32);
  CHECK(model.flat_master().data != model.flat_parameters().data);
  CHECK(model.flat_master().numel() == model.flat_parameters().numel());
  for (const NamedParameter& p : model.parameters()) {
    CHECK(p.value.dtype == DType::bf16);
    CHECK(p.master.dtype == DType::f32);
    CHECK(p.grad.dtype == DType::f32);
    CHECK(p.master.numel() == p.value.numel());
    CHECK(static_cast<char*>(p.master.data) - static_cast<char*>(model.flat_master().data) ==
          p.offset * 4);
  }

  // init writes the same fp32 values as an f32 model, and the working copy is their rounding.
  model.init_weights(9);
  ref.init_weights(9);
  const auto master = host_copy<float>(be, model.flat_master());
  CHECK(master == host_copy<float>(*cpu, ref.flat_parameters()));
  const auto work = host_copy<uint16_t>(be, model.flat_parameters());
  bool all_rounded = true;
  for (size_t i = 0; i < master.size(); ++i) all_rounded &= work[i] == f32_to_bf16(master[i]);
  CHECK(all_rounded);
}

TEST_CASE("bf16 training tracks f32 within 2% and repeats bit for bit (emulated bf16)",
          "[model][precision]") {
  const ModelConfig cfg = small_gqa();
  const int64_t B = 2, T = 16;
  const auto batches = step_batches(10, B, T, cfg.vocab_size, 5);
  Bf16EmulationBackend be;
  auto cpu = make_backend(meap::DeviceChoice::cpu);
  Llama ref(cfg, *cpu, B, T, DType::f32), a(cfg, be, B, T, DType::bf16),
      b(cfg, be, B, T, DType::bf16, 1, Recompute::all);
  for (Llama* m : {&ref, &a, &b}) m->init_weights(17);
  const StepRun rr = train_steps(ref, batches, B, T), ra = train_steps(a, batches, B, T),
                rb = train_steps(b, batches, B, T);
  double worst = 0;
  for (size_t s = 0; s < rr.losses.size(); ++s) {
    INFO("step " << s + 1 << ": f32 " << rr.losses[s] << ", bf16 " << ra.losses[s]);
    const double rel = std::abs(ra.losses[s] - rr.losses[s]) / rr.losses[s];
    CHECK(rel < 0.02);
    CHECK(rel > 0);  // really computed in bf16
    worst = std::max(worst, rel);
    CHECK(rb.losses[s] == ra.losses[s]);  // recompute=all and a second run: bit for bit
    CHECK(rb.grad_norms[s] == ra.grad_norms[s]);
  }
  CHECK(rb.master == ra.master);
  CHECK(ra.losses.back() < 0.9 * ra.losses.front());
  // The working copy is the rounding of the master after AdamW's fused write.
  const auto work = host_copy<uint16_t>(be, a.flat_parameters());
  bool all_rounded = true;
  for (size_t i = 0; i < ra.master.size(); ++i) all_rounded &= work[i] == f32_to_bf16(ra.master[i]);
  CHECK(all_rounded);
  std::printf("emulated bf16 vs f32 over 10 steps: worst relative loss difference %.3g\n", worst);
}

TEST_CASE("bf16 model: weights files hold the fp32 master, and loading re-syncs the working copy",
          "[model][precision]") {
  const ModelConfig cfg = small_gqa();
  Bf16EmulationBackend be;
  Llama a(cfg, be, 1, 16, DType::bf16), b(cfg, be, 1, 16, DType::bf16);
  a.init_weights(3);
  // Move the master off the bf16 grid, as AdamW does, so a bf16 file would lose something.
  std::vector<float> m = host_copy<float>(be, a.flat_master());
  for (float& x : m) x *= 1.0f + 1e-4f;
  be.copy_from_host(a.flat_master(), m.data());
  a.sync_working_copy();
  const std::string path =
      "/tmp/meap_test_bf16_weights-" + std::to_string(::getpid()) + ".safetensors";
  save_llama_weights(a, path);
  const SafetensorsFile file = SafetensorsFile::open(path);
  CHECK(file.info("tok_embeddings.weight").dtype == DType::f32);
  load_llama_weights(b, path);
  std::remove(path.c_str());
  CHECK(host_copy<float>(be, b.flat_master()) == m);
  CHECK(host_copy<uint16_t>(be, b.flat_parameters()) ==
        host_copy<uint16_t>(be, a.flat_parameters()));
}

TEST_CASE("bf16 model: the sampler reads bf16 logits", "[model][precision][generate]") {
  const ModelConfig cfg = small_gqa();
  Bf16EmulationBackend be;
  Llama model(cfg, be, 1, cfg.max_seq_len, DType::bf16);
  model.init_weights(21);
  const std::vector<int32_t> context = {1, 5, 7, 2};
  model.forward_logits(context.data(), 1, 4);
  REQUIRE(model.logits().dtype == DType::bf16);
  const auto all = host_copy<uint16_t>(be, model.logits());
  std::vector<float> last(cfg.vocab_size);
  for (int64_t v = 0; v < cfg.vocab_size; ++v) last[v] = bf16_to_f32(all[3 * cfg.vocab_size + v]);
  const int32_t want = static_cast<int32_t>(
      std::max_element(last.begin(), last.end()) - last.begin());  // first of ties
  SamplingOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = 1;
  const std::vector<int32_t> got = generate(model, context, greedy, -1, -1);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == want);
}
