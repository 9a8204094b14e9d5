// `meap batches CONFIG.yaml [key=value ...] --steps N --out FILE.safetensors`: the first N
// global training batches of a run, exactly as `meap train` with that config consumes them
// (same streamer, order and MEAP masks), for an outside reference to train on
// (tests/reference/train_reference.py, scripts/compare_with_torch.sh).
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/safetensors.hpp"
#include "meap/data/token_streamer.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"

namespace meap::cli {

int batches_command(const Args& args) {
  CommandLine cli(
      "meap batches",
      "Writes the first N global training batches that `meap train CONFIG` (with the same\n"
      "overrides) consumes, whole, as on one rank: the same shards, shuffle, MEAP masks and\n"
      "order.",
      "Tensors (S = N steps, GB = train.global_batch_size, T = data.seq_len):\n"
      "  inputs   (S, GB, T) I32  the model's inputs, [MASK] already applied\n"
      "  targets  (S, GB, T) I32  the clean next tokens\n"
      "  weights  (S, GB, T) F32  per-token loss weights\n"
      "Metadata: format=meap-batches, steps, global_batch_size, micro_batch_size, seq_len,\n"
      "seed, mask_ratio, mask_id, vocab_size and config (the effective config as YAML).\n"
      "A step's loss is the weighted mean of its tokens' cross-entropy over the whole global\n"
      "batch; micro-batch k of a step is rows [k * micro_batch_size, (k + 1) * micro_batch_size).");
  ConfigArgs config;
  int64_t steps = 0;
  std::string out;
  cli.add_config(config);
  cli.add_option("--steps", steps, "N", "how many optimizer steps' batches (N >= 1)")
      ->required()
      ->check(at_least(1));
  cli.add_out(out, "the safetensors file to write (replaced atomically if it exists)")
      ->type_name("FILE");
  if (const auto done = cli.parse(args)) return *done;

  const Config cfg = load_config(config.path, config.overrides);
  validate_config(cfg, 1);
  if (cfg.data.train.empty()) fail("data.train is empty: give the glob of the training shards");

  // Rank 0 of 1: the whole global batch, in global-slot order (a run on N ranks sees the
  // same sequences, each rank its slice).
  TokenStreamer stream(streamer_config(cfg, true, 0, 1));
  const ShardInfo& info = stream.shard_info();
  if (static_cast<int64_t>(info.vocab_size) != cfg.model.vocab_size)
    fail("data.train '", cfg.data.train, "' has a vocabulary of ", info.vocab_size,
         " but model.vocab_size is ", cfg.model.vocab_size, "; they must agree");

  const int64_t GB = cfg.train.global_batch_size, T = cfg.data.seq_len, per_step = GB * T;
  // (S, GB, T) each, filled step by step.
  std::vector<int32_t> inputs(steps * per_step), targets(steps * per_step);
  std::vector<float> weights(steps * per_step);
  for (int64_t s = 0; s < steps; ++s) {
    const TokenBatch& b = stream.next();
    MEAP_CHECK(b.batch_size == GB && b.seq_len == T, "streamer batch shape");
    std::copy(b.inputs.begin(), b.inputs.end(), inputs.begin() + s * per_step);
    std::copy(b.targets.begin(), b.targets.end(), targets.begin() + s * per_step);
    std::copy(b.weights.begin(), b.weights.end(), weights.begin() + s * per_step);
  }

  SafetensorsWriter w;
  w.set_metadata("format", "meap-batches");
  w.set_metadata("version", "1");
  w.set_metadata("steps", std::to_string(steps));
  w.set_metadata("global_batch_size", std::to_string(GB));
  w.set_metadata("micro_batch_size", std::to_string(cfg.train.micro_batch_size));
  w.set_metadata("seq_len", std::to_string(T));
  w.set_metadata("seed", std::to_string(cfg.run.seed));
  w.set_metadata("mask_ratio", str_cat(cfg.data.meap.mask_ratio));
  w.set_metadata("mask_id", std::to_string(info.special.mask));
  w.set_metadata("vocab_size", std::to_string(info.vocab_size));
  w.set_metadata("config", config_to_yaml(cfg));
  w.add("inputs", DType::i32, {steps, GB, T}, inputs.data());
  w.add("targets", DType::i32, {steps, GB, T}, targets.data());
  w.add("weights", DType::f32, {steps, GB, T}, weights.data());
  w.write(out);
  spdlog::info("meap batches: {} steps x {} sequences x {} tokens of {} -> {}", steps, GB, T,
               cfg.data.train, out);
  return 0;
}

}  // namespace meap::cli
