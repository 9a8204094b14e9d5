// `meap init CONFIG.yaml [key=value ...] --out CHECKPOINT_DIR`: the weights a fresh
// `meap train CONFIG` starts from, as a step-0 checkpoint. An outside reference trains from
// the same weights (scripts/compare_with_torch.sh), and `checkpoint.init_from` makes a meap
// run on any device start from them too.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "meap/backend/backend.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/llama_io.hpp"
#include "meap/core/staged_directory.hpp"

namespace fs = std::filesystem;

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap init CONFIG.yaml [section.key=value ...] --out CHECKPOINT_DIR [--force]\n"
    "\n"
    "Writes the weights a fresh `meap train CONFIG` (same overrides) starts from as a\n"
    "checkpoint at step 0: manifest.json (the effective config), model.safetensors (fp32,\n"
    "meap's tensor names) and a copy of data.tokenizer when it exists. The weights are the\n"
    "normal init of run.seed and model.init_std, or, when checkpoint.init_from is set, that\n"
    "checkpoint's. `checkpoint.init_from=CHECKPOINT_DIR` starts a run from them on any\n"
    "device; an outside reference (tests/reference/train_reference.py) reads\n"
    "model.safetensors.\n"
    "\n"
    "  --out DIR   the checkpoint directory to create (refused if it exists, unless --force)\n"
    "  --force     replace an existing DIR (only once the new one is complete)\n";

}  // namespace

int init_command(const Args& args) {
  std::string config_path, out;
  std::vector<std::string> overrides;
  bool force = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--out") {
      if (i + 1 >= args.size()) fail("--out needs a value (see meap init --help)");
      out = args[++i];
    } else if (a == "--force") {
      force = true;
    } else if (a.rfind("--", 0) == 0) {
      fail("unknown option '", a, "' (see meap init --help)");
    } else if (config_path.empty()) {
      config_path = a;
    } else {
      overrides.push_back(a);
    }
  }
  if (config_path.empty() || out.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const Config cfg = load_config(config_path, overrides);

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
    fs::copy_file(cfg.data.tokenizer, dir / "tokenizer.model");
    fsync_file((dir / "tokenizer.model").string());
  }
  CheckpointManifest manifest;  // step 0, nothing seen yet
  manifest.config_yaml = config_to_yaml(cfg);
  manifest.seed = cfg.run.seed;
  write_checkpoint_manifest(dir.string(), manifest);
  const std::string final_dir = staged.commit();
  std::fprintf(stderr, "meap init: %ld parameters (%s) -> %s%s\n",
               static_cast<long>(model.num_parameters()), source.c_str(), final_dir.c_str(),
               has_tokenizer ? "" : " (no tokenizer copied: data.tokenizer does not exist)");
  return 0;
}

}  // namespace meap::cli
