// meap_reference_dump OUT_DIR: writes what the PyTorch reference test needs -- a tiny
// GQA model's config and fp32 weights, a random batch, and our logits, loss and gradients.
// Usage: meap_reference_dump OUT_DIR tied|untied
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "meap/model/llama_io.hpp"
#include "meap/core/rng.hpp"

using namespace meap;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: meap_reference_dump OUT_DIR tied|untied\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  ModelConfig c;
  c.vocab_size = 37;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_dim = 48;
  c.max_seq_len = 16;
  c.rope_theta = 500.0;  // small theta: large angles exercise the rotation convention
  c.norm_eps = 1e-5;
  c.tie_embeddings = std::string(argv[2]) == "tied";
  c.init_std = 0.2;
  const int64_t B = 3, T = 7;

  auto backend = make_backend(meap::DeviceChoice::cpu);
  Llama model(c, *backend, B, T);
  model.init_weights(2024);
  save_llama_weights(model, (dir / "weights.safetensors").string());

  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::vector<float> weights(B * T);
  for (int64_t i = 0; i < B * T; ++i) {
    const auto r = philox4x32({static_cast<uint32_t>(i), 1, 0, 0}, philox_key(77));
    inputs[i] = static_cast<int32_t>(r[0] % c.vocab_size);
    targets[i] = static_cast<int32_t>(r[1] % c.vocab_size);
    weights[i] = (r[2] % 4 == 0) ? 0.0f : ((r[3] % 2) ? 1.0f : 0.5f);
  }
  SafetensorsWriter batch;
  batch.add("inputs", DType::i32, {B, T}, inputs.data());
  batch.add("targets", DType::i32, {B, T}, targets.data());
  batch.add("weights", DType::f32, {B, T}, weights.data());
  batch.write((dir / "batch.safetensors").string());

  SafetensorsWriter ours;
  model.forward_logits(inputs.data(), B, T);
  std::vector<float> logits(B * T * c.vocab_size);
  backend->copy_to_host(logits.data(), model.logits());
  ours.add("logits", DType::f32, {B, T, c.vocab_size}, logits.data());
  model.zero_grad();
  const double loss = model.forward(inputs.data(), targets.data(), weights.data(), B, T);
  model.backward();
  ours.add("loss", DType::f64, {1}, &loss);
  for (const NamedParameter& p : model.parameters()) {
    std::vector<float> g(p.grad.numel());
    backend->copy_to_host(g.data(), p.grad);
    ours.add("grad." + p.name, DType::f32,
             std::vector<int64_t>(p.grad.shape.begin(), p.grad.shape.begin() + p.grad.ndim),
             g.data());
  }
  ours.write((dir / "ours.safetensors").string());

  nlohmann::json j = {{"vocab_size", c.vocab_size}, {"dim", c.dim},
                      {"n_layers", c.n_layers},     {"n_heads", c.n_heads},
                      {"n_kv_heads", c.n_kv_heads}, {"ffn_dim", c.ffn_dim},
                      {"rope_theta", c.rope_theta}, {"norm_eps", c.norm_eps},
                      {"tie_embeddings", c.tie_embeddings}};
  std::ofstream(dir / "config.json") << j.dump(2) << "\n";
  std::printf("wrote %s (loss %.6f)\n", dir.c_str(), loss);
  return 0;
}
