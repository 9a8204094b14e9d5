// `meap inspect CONFIG.yaml [key=value ...]`: what a run of this config costs before it
// starts -- parameter counts, training FLOPs per token, and memory per device.
// `meap inspect --sft GLOB --sft-sample N`: one SFT sample's training layout (inspect_sft.cpp).
#include <cstdio>
#include <optional>

#include "cli/command_line.hpp"
#include "cli/inspect_sft.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/human_format.hpp"
#include "meap/core/system_memory.hpp"
#include "meap/train/config.hpp"
#include "meap/model/llama.hpp"

namespace meap::cli {

int inspect_command(const Args& args) {
  CommandLine cli(
      "meap inspect",
      "Prints the model's parameter count (total and non-embedding), the training FLOPs\n"
      "per token (6 N + 12 L T C), and the memory a training step needs per device for\n"
      "the configured micro-batch in the configured train.precision (weights, fp32 master\n"
      "copy under bf16, gradients, AdamW moments, activations under train.recompute).\n"
      "With --sft GLOB --sft-sample N instead of a config: the training layout of SFT sample\n"
      "N (docs/sft.md): one line per position with its segment, RoPE position, input,\n"
      "target and loss weight.");
  ConfigArgs config;
  cli.add_config(config);
  // CONFIG.yaml, or the SFT sample options: one of the two (checked after parsing).
  CLI::Option* config_option = cli.app().get_option("CONFIG.yaml");
  config_option->required(false);
  SftSampleArgs sft;
  CLI::Option* shards = cli.add_option(
      "--sft", sft.shards, "GLOB",
      "SFT shards (`meap prepare --sft`, e.g. 'data/sft/sft-train-*.bin'), sorted by path");
  CLI::Option* sample = cli.add_option("--sft-sample", sft.sample, "N",
                                       "print the layout of sample N (in shard order, from 0)");
  shards->needs(sample);
  sample->needs(shards);
  config_option->excludes(shards);
  cli.add_option("--epoch", sft.epoch, "E", "the epoch whose masks to show (default 0)")
      ->needs(shards);
  cli.add_option("--seed", sft.seed, "S",
                 "run.seed, which keys the masks (default " + std::to_string(sft.seed) + ")")
      ->needs(shards);
  cli.add_tokenizer(sft.tokenizer,
                    "the tokenizer that shows the pieces (default: the tokenizer.model or\n"
                    "tokenizer.json beside the shards; its checksum must match theirs)")
      ->needs(shards);
  add_sft_options(cli, sft.sft, shards);
  cli.app().final_callback([&] {
    if (config.path.empty() && shards->count() == 0)
      throw CLI::RequiredError("CONFIG.yaml (or --sft GLOB --sft-sample N)");
  });
  if (const auto done = cli.parse(args)) return *done;
  if (shards->count() > 0) return inspect_sft_sample(sft);
  const Config cfg = load_config(config.path, config.overrides);
  const ModelConfig& m = cfg.model;
  const int64_t B = cfg.train.micro_batch_size, T = cfg.data.seq_len;
  // The device a run of this config would use, without starting a backend (a GPU config is
  // inspected on a machine without one).
  const Device device = resolve_device(cfg.train.device);
  const DType dtype = precision_dtype(cfg.train.precision, device);  // refused as train refuses
  const Recompute recompute = cfg.train.recompute;
  const LlamaMemoryPlan plan = Llama::memory_plan(m, B, T, dtype, recompute);
  const LlamaMemoryPlan kept_all = Llama::memory_plan(m, B, T, dtype, Recompute::none);

  const int64_t embedding = m.vocab_size * m.dim * (m.tie_embeddings ? 1 : 2);
  const int64_t non_embedding = plan.n_parameters - embedding;
  const double flops_per_token = training_flops_per_token(m, T);
  // AdamW moments are in the master's dtype: f32 for fp32 and bf16 alike.
  const double adam_bytes = 2.0 * plan.n_parameters * 4;
  const double total_bytes = plan.parameter_bytes + plan.master_bytes + plan.gradient_bytes +
                             adam_bytes + plan.activation_bytes;
  const int64_t accumulation = cfg.train.global_batch_size / cfg.train.micro_batch_size;

  std::printf("config            %s\n", config.path.c_str());
  std::printf("model             dim %ld, %ld layers, %ld heads (%ld kv, head dim %ld), ffn %ld, "
              "vocab %ld, %s head\n",
              m.dim, m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim(), m.ffn_dim, m.vocab_size,
              m.tie_embeddings ? "tied" : "untied");
  std::printf("parameters        %s total (%ld), %s non-embedding (%ld)\n",
              human_count(plan.n_parameters).c_str(), plan.n_parameters,
              human_count(non_embedding).c_str(), non_embedding);
  std::printf("FLOPs per token   %s (training: forward + backward, seq_len %ld)\n",
              human_count(flops_per_token).c_str(), T);
  std::printf("FLOPs per step    %s (%ld sequences x %ld tokens)\n",
              human_count(flops_per_token * cfg.train.global_batch_size * T).c_str(),
              cfg.train.global_batch_size, T);
  std::printf("batch             global %ld = micro %ld x %ld accumulation steps (1 rank)\n",
              cfg.train.global_batch_size, B, accumulation);
  const bool bf16 = dtype == DType::bf16;
  std::printf("memory per device (%s on %s, micro-batch %ld x %ld):\n",
              bf16 ? "bf16 with fp32 master weights" : "fp32",
              device == Device::cuda ? "cuda" : "cpu", B, T);
  std::printf("  weights         %s (%s)\n", human_bytes(plan.parameter_bytes).c_str(),
              bf16 ? "bf16 working copy" : "fp32, also the master");
  if (bf16) std::printf("  master weights  %s (fp32)\n", human_bytes(plan.master_bytes).c_str());
  std::printf("  gradients       %s (fp32)\n", human_bytes(plan.gradient_bytes).c_str());
  std::printf("  AdamW moments   %s (fp32)\n", human_bytes(adam_bytes).c_str());
  // tests and docs read "activation_bytes N": the exact byte count behind the rounded one.
  std::printf("  activations     %s (train.recompute=%s; activation_bytes %zu",
              human_bytes(plan.activation_bytes).c_str(),
              std::string(enum_name(recompute)).c_str(), plan.activation_bytes);
  if (recompute != Recompute::none)
    std::printf(", %s without recompute", human_bytes(kept_all.activation_bytes).c_str());
  std::printf(")\n");
  std::printf("  total           %s\n", human_bytes(total_bytes).c_str());
  if (const std::optional<uint64_t> available = available_host_memory())
    std::printf("host memory       %s available%s\n", human_bytes(*available).c_str(),
                device == Device::cpu && total_bytes > static_cast<double>(*available)
                    ? ": this run does NOT fit (meap train refuses it)"
                    : "");
  return 0;
}

}  // namespace meap::cli
