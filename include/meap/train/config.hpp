// Config: the YAML run config (configs/*.yaml), one struct per section, with defaults.
// load_config reads a file, applies dotted command-line overrides (optim.lr=1e-3) and
// validates every key; config_to_yaml prints the effective config saved with a run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meap/model/model_config.hpp"
#include "meap/core/tensor.hpp"

namespace meap {

struct RunConfig {
  std::string name = "meap";
  std::string out_dir = "runs/meap";
  uint64_t seed = 1234;  // seeds init and, with the sequence index, every MEAP mask
  bool operator==(const RunConfig&) const = default;
};

struct MeapConfig {
  double mask_ratio = 0.15;            // fraction of input tokens replaced by [MASK]; 0 = NTP
  bool keep_special_unmasked = false;  // never mask BOS/EOS
  bool operator==(const MeapConfig&) const = default;
};

struct DataConfig {
  std::string train;      // glob of training shards
  std::string val;        // glob of validation shards
  std::string tokenizer;  // SentencePiece model
  int64_t seq_len = 256;  // tokens per training sequence (T)
  MeapConfig meap;
  bool operator==(const DataConfig&) const = default;
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
  std::string device = "auto";     // auto | cpu | cuda
  // auto | fp32 | bf16. bf16: bf16 weights and activations, fp32 master weights, f32
  // gradients and moments (CUDA only). auto: bf16 on a CUDA backend, fp32 on the CPU.
  std::string precision = "auto";
  // none | mlp | attention | all: per-layer activations recomputed in the backward
  // instead of kept (Recompute in llama.hpp); same results, less activation memory.
  std::string recompute = "none";
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
  bool operator==(const LogConfig&) const = default;
};

struct DistConfig {
  double timeout_s = 600;  // a collective still waiting after this long ends every rank
  // ZeRO-1: each rank keeps the AdamW moments of 1 / world_size of the parameters
  // (reduce-scatter of the gradients, sharded update, all-gather of the weights).
  bool zero1 = false;
  // Gradient all-reduce in buckets of this many MiB, started during the last micro-batch's
  // backward (overlapping the remaining layers); 0 = one all-reduce after the backward.
  double bucket_mb = 25;
  bool operator==(const DistConfig&) const = default;
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
  DistConfig dist;
};

// Compares every config key (ModelConfig has no operator== of its own, so this goes
// through the key table rather than a defaulted comparison).
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
// auto -> bf16 on CUDA, f32 on the CPU. (bf16 on the CPU is refused by validate_config when
// train.device=cpu, and by Llama when train.device=auto picked the CPU.)
DType precision_dtype(const TrainConfig& train, Device device);

// Range and cross-key checks (batch divisibility needs the number of ranks).
// Throws meap::Error naming the offending keys.
void validate_config(const Config& config, int world_size = 1);

}  // namespace meap
