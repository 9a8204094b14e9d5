// Config: the YAML run config of `meap train` (configs/*.yaml). The train layer owns the
// run, optim, train, checkpoint, eval and log sections and composes them with the model's,
// the data's (data, sft) and dist's own sections (each with its keys and checks, in its
// layer).
// load_config reads a file, applies dotted overrides (optim.lr=1e-3) and validates every
// key; config_to_yaml prints the effective config saved with a run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meap/backend/device_choice.hpp"
#include "meap/core/tensor.hpp"
#include "meap/data/data_config.hpp"
#include "meap/data/sft_config.hpp"
#include "meap/dist/dist_config.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/model_config.hpp"

namespace meap {

// train.precision. bf16: bf16 weights and activations, fp32 master weights, f32 gradients
// and moments (CUDA only). auto: bf16 on a CUDA backend, fp32 on the CPU.
enum class Precision { auto_, fp32, bf16 };
std::span<const std::string_view> enum_names(Precision);

struct RunConfig {
  std::string name = "meap";
  std::string out_dir = "runs/meap";
  uint64_t seed = 1234;  // seeds init and, with the sequence index, every MEAP mask
  bool operator==(const RunConfig&) const = default;
};

struct OptimConfig {
  double lr = 3e-3;
  double min_lr = 3e-4;  // cosine decay floor
  int64_t warmup_steps = 50;
  double weight_decay = 0.1;
  double beta1 = 0.9;  // YAML: optim.betas: [beta1, beta2]
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // global grad-norm clip; 0 = off
  bool operator==(const OptimConfig&) const = default;
};

struct TrainConfig {
  int64_t global_batch_size = 32;  // sequences per optimizer step, over all ranks
  int64_t micro_batch_size = 8;    // sequences per forward/backward on one rank
  int64_t max_steps = 300;
  // > 0: the run is this many epochs of the training data (their global batches, counted
  // when the data is opened) instead of max_steps; the schedule decays over them.
  int64_t max_epochs = 0;
  DeviceChoice device = DeviceChoice::auto_;
  Precision precision = Precision::auto_;
  // Per-layer activations recomputed in the backward instead of kept (Recompute in
  // llama.hpp); same results, less activation memory.
  Recompute recompute = Recompute::none;
  bool operator==(const TrainConfig&) const = default;
};

struct CheckpointConfig {
  int64_t interval = 100;  // steps between checkpoints
  int64_t keep_last = 3;
  // A checkpoint (or run directory, or `meap import` output) whose weights a fresh run
  // starts from instead of random ones; the optimizer and data order start anew. Ignored
  // when --resume finds a checkpoint of this run.
  std::string init_from;
  bool operator==(const CheckpointConfig&) const = default;
};

struct EvalConfig {
  int64_t interval = 100;  // steps between validation passes
  int64_t steps = 10;      // global batches per validation pass
  bool operator==(const EvalConfig&) const = default;
};

struct LogConfig {
  int64_t interval = 10;  // steps between log lines
  bool tensorboard = false;  // also write the metrics as TensorBoard events (RUN_DIR/tensorboard)
  bool operator==(const LogConfig&) const = default;
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  SftConfig sft;
  OptimConfig optim;
  TrainConfig train;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
  DistConfig dist;
};

// An SFT run (sft.train set) fine-tunes on SFT shards; otherwise the run pre-trains on
// data.train's token shards.
inline bool is_sft_run(const Config& config) { return !config.sft.train.empty(); }

// Every key of the run config, in the order the effective config is printed.
const ConfigSchema& config_schema();

// Compares every config key.
bool operator==(const Config& a, const Config& b);

// Reads the YAML file at `path`, applies overrides ("optim.lr=1e-3", values parsed as
// YAML, so "optim.betas=[0.9,0.99]" works), resolves model.n_kv_heads = 0 to n_heads, and
// validates. Throws meap::Error naming the file, the dotted key and, for unknown keys, a
// did-you-mean suggestion.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// As load_config, from YAML text; `source_name` stands in for the file name in errors.
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                    const std::string& source_name = "<string>");

// The effective config, every key included, as YAML that parse_config reads back equal.
std::string config_to_yaml(const Config& config);

// The model dtype of train.precision on a backend of `device`: fp32 -> f32, bf16 -> bf16,
// auto -> bf16 on CUDA, f32 on the CPU. bf16 on the CPU is refused, naming train.precision
// and train.device: the one place that rule lives.
DType precision_dtype(Precision precision, Device device);

// Range checks of every section and the checks across sections (batch divisibility needs
// the number of ranks). Throws meap::Error naming the offending keys.
void validate_config(const Config& config, int world_size = 1);

}  // namespace meap
