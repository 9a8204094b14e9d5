// The run config: the train layer's own sections, the composition of every layer's
// section into one schema, and the checks that span sections.
#include "meap/train/config.hpp"

#include <fstream>
#include <sstream>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

namespace {

ConfigKeys<RunConfig> run_keys() {
  return {{MEAP_CONFIG_KEY(RunConfig, name), MEAP_CONFIG_KEY(RunConfig, out_dir),
           MEAP_CONFIG_KEY(RunConfig, seed)}};
}

ConfigKeys<OptimConfig> optim_keys() {
  return {{
      MEAP_CONFIG_KEY(OptimConfig, lr),
      MEAP_CONFIG_KEY(OptimConfig, min_lr),
      MEAP_CONFIG_KEY(OptimConfig, warmup_steps),
      MEAP_CONFIG_KEY(OptimConfig, weight_decay),
      // Two members behind one key: the only hand-written row.
      {"betas", [](OptimConfig& o) -> ConfigSlot { return ConfigPair{&o.beta1, &o.beta2}; }},
      MEAP_CONFIG_KEY(OptimConfig, eps),
      MEAP_CONFIG_KEY(OptimConfig, grad_clip),
  }};
}

ConfigKeys<TrainConfig> train_keys() {
  return {{
      MEAP_CONFIG_KEY(TrainConfig, global_batch_size),
      MEAP_CONFIG_KEY(TrainConfig, micro_batch_size),
      MEAP_CONFIG_KEY(TrainConfig, max_steps),
      MEAP_CONFIG_KEY(TrainConfig, max_epochs),
      MEAP_CONFIG_KEY(TrainConfig, device),
      MEAP_CONFIG_KEY(TrainConfig, precision),
      MEAP_CONFIG_KEY(TrainConfig, recompute),
  }};
}

ConfigKeys<CheckpointConfig> checkpoint_keys() {
  return {{MEAP_CONFIG_KEY(CheckpointConfig, interval),
           MEAP_CONFIG_KEY(CheckpointConfig, keep_last),
           MEAP_CONFIG_KEY(CheckpointConfig, init_from)}};
}

ConfigKeys<EvalConfig> eval_keys() {
  return {{MEAP_CONFIG_KEY(EvalConfig, interval), MEAP_CONFIG_KEY(EvalConfig, steps)}};
}

ConfigKeys<LogConfig> log_keys() {
  return {{MEAP_CONFIG_KEY(LogConfig, interval), MEAP_CONFIG_KEY(LogConfig, tensorboard)}};
}

ConfigSchema make_schema() {
  ConfigSchema s;
  s.add_section("run", &Config::run, run_keys());
  s.add_section("model", &Config::model, model_config_keys());
  s.add_section("data", &Config::data, data_config_keys());
  s.add_section("sft", &Config::sft, sft_config_keys());
  s.add_section("optim", &Config::optim, optim_keys());
  s.add_section("train", &Config::train, train_keys());
  s.add_section("checkpoint", &Config::checkpoint, checkpoint_keys());
  s.add_section("eval", &Config::eval, eval_keys());
  s.add_section("log", &Config::log, log_keys());
  s.add_section("dist", &Config::dist, dist_config_keys());
  return s;
}

void validate(const RunConfig& r) {
  require_config(!r.name.empty(), "run.name", "a non-empty string", "\"\"");
  require_config(!r.out_dir.empty(), "run.out_dir", "a non-empty path", "\"\"");
}

void validate(const OptimConfig& o) {
  require_config(o.lr > 0, "optim.lr", "positive", o.lr);
  if (!(o.min_lr >= 0 && o.min_lr <= o.lr))
    fail("optim.min_lr must be in [0, optim.lr] = [0, ", o.lr, "], got ", o.min_lr);
  require_config(o.warmup_steps >= 0, "optim.warmup_steps", ">= 0", o.warmup_steps);
  require_config(o.weight_decay >= 0, "optim.weight_decay", ">= 0", o.weight_decay);
  require_config(o.beta1 >= 0 && o.beta1 < 1, "optim.betas[0]", "in [0, 1)", o.beta1);
  require_config(o.beta2 >= 0 && o.beta2 < 1, "optim.betas[1]", "in [0, 1)", o.beta2);
  require_config(o.eps > 0, "optim.eps", "positive", o.eps);
  require_config(o.grad_clip >= 0, "optim.grad_clip", ">= 0 (0 = no clipping)", o.grad_clip);
}

void validate(const TrainConfig& t) {
  require_config(t.global_batch_size > 0, "train.global_batch_size", "a positive integer",
                 t.global_batch_size);
  require_config(t.micro_batch_size > 0, "train.micro_batch_size", "a positive integer",
                 t.micro_batch_size);
  require_config(t.max_steps > 0, "train.max_steps", "a positive integer", t.max_steps);
  // Bounded: the run's step count is summed over the epochs when the data is opened.
  require_config(t.max_epochs >= 0 && t.max_epochs <= 10000, "train.max_epochs",
                 "in [0, 10000] (0 = train.max_steps decides)", t.max_epochs);
  if (t.device == DeviceChoice::cpu) precision_dtype(t.precision, Device::cpu);
}

}  // namespace

std::span<const std::string_view> enum_names(Precision) {
  static constexpr std::string_view kNames[] = {"auto", "fp32", "bf16"};
  return kNames;
}

const ConfigSchema& config_schema() {
  static const ConfigSchema schema = make_schema();
  return schema;
}

bool operator==(const Config& a, const Config& b) { return config_schema().equal(a, b); }

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& source_name) {
  Config config;
  config_schema().read(config, yaml_text, overrides, source_name);
  if (config.model.n_kv_heads == 0) config.model.n_kv_heads = config.model.n_heads;
  try {
    validate_config(config);
  } catch (const Error& e) {
    fail(source_name, overrides.empty() ? "" : " (with overrides)", ": ", e.what());
  }
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(read_small_file(path, kMaxConfigBytes, "config file"), overrides, path);
}

std::string config_to_yaml(const Config& config) { return config_schema().to_yaml(config); }

DType precision_dtype(Precision precision, Device device) {
  switch (precision) {
    case Precision::fp32: return DType::f32;
    case Precision::bf16:
      if (device == Device::cpu)
        fail("train.precision=bf16 needs the CUDA backend (train.device=cuda on a machine with a "
             "GPU): the CPU backend computes in fp32 only; set train.precision=auto (or fp32) "
             "to train on the CPU");
      return DType::bf16;
    case Precision::auto_: break;
  }
  return device == Device::cuda ? DType::bf16 : DType::f32;
}

void validate_config(const Config& c, int world_size) {
  MEAP_CHECK(world_size >= 1, "world_size = ", world_size);
  validate(c.run);
  c.model.validate();
  validate(c.data);
  validate(c.sft);
  validate(c.optim);
  validate(c.train);
  validate(c.dist);
  require_config(c.checkpoint.interval > 0, "checkpoint.interval", "a positive integer",
                 c.checkpoint.interval);
  require_config(c.checkpoint.keep_last >= 1, "checkpoint.keep_last", ">= 1",
                 c.checkpoint.keep_last);
  require_config(c.eval.interval > 0, "eval.interval", "a positive integer", c.eval.interval);
  require_config(c.eval.steps > 0, "eval.steps", "a positive integer", c.eval.steps);
  require_config(c.log.interval > 0, "log.interval", "a positive integer", c.log.interval);

  // Across sections.
  // One kind of data per run: token shards (pre-training) or SFT shards (fine-tuning).
  if (!c.sft.train.empty() && !c.data.train.empty())
    fail("data.train ('", c.data.train, "') and sft.train ('", c.sft.train,
         "') are both set: a run pre-trains on token shards (data.train) or fine-tunes on SFT "
         "shards (sft.train), not both; clear one of them (e.g. data.train='')");
  if (c.sft.train.empty() && !c.sft.val.empty())
    fail("sft.val is set but sft.train is not: SFT validation needs an SFT run; set sft.train "
         "to the SFT training shards, or clear sft.val");
  if (!c.sft.train.empty() && !c.data.val.empty())
    fail("data.val ('", c.data.val, "') is set in an SFT run: its validation is the loss on "
         "held-out answers of sft.val; move the glob to sft.val or clear data.val");
  if (c.data.seq_len > c.model.max_seq_len)
    fail("data.seq_len (", c.data.seq_len, ") must not exceed model.max_seq_len (",
         c.model.max_seq_len, "); raise model.max_seq_len or shorten data.seq_len");
  // Each optimizer step is world_size ranks x (accumulation steps) x micro-batches.
  const TrainConfig& t = c.train;
  if (t.global_batch_size % (t.micro_batch_size * world_size) != 0)
    fail("train.global_batch_size (", t.global_batch_size,
         ") must be divisible by train.micro_batch_size (", t.micro_batch_size,
         ") x world size (", world_size, ") = ", t.micro_batch_size * world_size);
}

}  // namespace meap
