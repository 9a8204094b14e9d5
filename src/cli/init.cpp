// `meap init CONFIG.yaml [key=value ...] --out CHECKPOINT_DIR`: the weights a fresh
// `meap train CONFIG` starts from, as a step-0 checkpoint. An outside reference trains from
// the same weights (scripts/compare_with_torch.sh), and `checkpoint.init_from` makes a meap
// run on any device start from them too.
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/core/staged_directory.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/llama_io.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"

namespace fs = std::filesystem;

namespace meap::cli {

int init_command(const Args& args) {
  CommandLine cli(
      "meap init",
      "Writes the weights a fresh `meap train CONFIG` (same overrides) starts from as a\n"
      "checkpoint at step 0: manifest.json (the effective config), model.safetensors (fp32,\n"
      "meap's tensor names) and a copy of data.tokenizer when it exists.",
      "The weights are the normal init of run.seed and model.init_std, or, when\n"
      "checkpoint.init_from is set, that checkpoint's. `checkpoint.init_from=CHECKPOINT_DIR`\n"
      "starts a run from them on any device; an outside reference\n"
      "(tests/reference/train_reference.py) reads model.safetensors.");
  ConfigArgs config;
  std::string out;
  bool force = false;
  cli.add_config(config);
  cli.add_out(out, "the checkpoint directory to create (refused if it exists,\nunless --force)");
  cli.add_force(force, "replace an existing DIR (only once the new one is complete)");
  if (const auto done = cli.parse(args)) return *done;
  const Config cfg = load_config(config.path, config.overrides);

  // The init is a pure function of the seed and writes the fp32 master, so the CPU in fp32
  // gives the weights of any device's run; a (1, 1) batch keeps the activations trivial.
  auto backend = make_backend(meap::DeviceChoice::cpu);
  Llama model(cfg.model, *backend, 1, 1, DType::f32);
  std::string source = "normal init, run.seed " + std::to_string(cfg.run.seed);
  if (cfg.checkpoint.init_from.empty()) {
    model.init_weights(cfg.run.seed);
  } else {
    source = "checkpoint.init_from " + load_initial_weights(cfg.checkpoint.init_from, model);
  }

  StagedDirectory staged(out, force, "manifest.json");
  const fs::path dir = staged.path();
  save_llama_weights(model, (dir / "model.safetensors").string());
  const bool has_tokenizer = !cfg.data.tokenizer.empty() && fs::exists(cfg.data.tokenizer);
  if (has_tokenizer) {
    copy_file_durable(cfg.data.tokenizer, (dir / "tokenizer.model").string());
  }
  CheckpointManifest manifest;  // step 0, nothing seen yet
  manifest.config_yaml = config_to_yaml(cfg);
  manifest.seed = cfg.run.seed;
  write_checkpoint_manifest(dir.string(), manifest);
  const std::string final_dir = staged.commit();
  spdlog::info("meap init: {} parameters ({}) -> {}{}", model.num_parameters(), source, final_dir,
               has_tokenizer ? "" : " (no tokenizer copied: data.tokenizer does not exist)");
  return 0;
}

}  // namespace meap::cli
