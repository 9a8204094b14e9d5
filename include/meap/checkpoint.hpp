// Checkpoints: one directory per step under RUN_DIR/checkpoints, written to a temporary
// name, fsynced and renamed, with a `latest` pointer moved only afterwards -- so a crash at
// any moment leaves the previous checkpoint loadable (docs/formats.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "meap/llama.hpp"
#include "meap/token_streamer.hpp"

namespace meap {

// Everything besides the tensors that a resumed run needs.
struct CheckpointManifest {
  int64_t step = 0;              // optimizer updates done
  uint64_t tokens_seen = 0;      // training tokens consumed, all ranks
  StreamerState streamer;        // the next training batch
  int world_size = 1;
  uint64_t seed = 0;
  double train_loss = 0;         // of the last step
  std::string config_yaml;       // the effective config of the run that wrote it
};

// What a checkpoint holds besides the manifest. m and v may be empty (weights only).
struct CheckpointTensors {
  const Llama* model = nullptr;
  Tensor m, v;  // AdamW moments, flat, same layout as the model's parameters
};

// Writes RUN_DIR/checkpoints/step-XXXXXXXX (manifest.json, model.safetensors,
// optim.safetensors, and a copy of the tokenizer when tokenizer_path is not empty),
// then points RUN_DIR/checkpoints/latest at it and prunes all but the newest keep_last.
// Returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                            const CheckpointTensors& tensors, const std::string& tokenizer_path,
                            int keep_last);

// The newest complete checkpoint of a run: the one `latest` names, or when that pointer is
// missing or stale, the highest step-* directory holding a manifest. nullopt if none.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir);

// Loads weights (and the moments, when m and v are given) into an already built model.
// Refuses a checkpoint of another model shape, naming the tensor.
void load_checkpoint_tensors(const std::string& checkpoint_dir, Llama& model, const Tensor& m,
                             const Tensor& v);

}  // namespace meap
