// Checkpoints: one directory per step under RUN_DIR/checkpoints, written to a temporary
// name, fsynced and renamed, with a `latest` pointer moved only afterwards -- so a crash at
// any moment leaves the previous checkpoint loadable (docs/formats.md).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "meap/model/llama.hpp"
#include "meap/data/token_streamer.hpp"

namespace meap {

// Everything besides the tensors that a resumed run needs.
struct CheckpointManifest {
  int64_t step = 0;              // optimizer updates done
  uint64_t tokens_seen = 0;      // training tokens consumed, all ranks
  StreamerState streamer;        // the next training batch
  int world_size = 1;
  bool zero1 = false;            // moments in per-rank shard files (optim-rank*-of-W)
  uint64_t seed = 0;
  double train_loss = 0;         // of the last step
  std::string config_yaml;       // the effective config of the run that wrote it
  // Config keys changed on a --resume with --allow-config-change, oldest first, as
  // "key: old -> new (at step N)"; carried into every later checkpoint of the run.
  std::vector<std::string> config_changes;
  // Checksum (checksum.hpp) of every file of the checkpoint directory but manifest.json,
  // by file name; filled by write_checkpoint_manifest, checked by verify_checkpoint_file.
  // Empty in version-1 checkpoints (written before checksums), which load unverified.
  std::map<std::string, std::string> files;
  int version = 0;  // of the manifest read; the current one is written
};

// What a checkpoint holds besides the manifest. m and v may be empty (weights only).
struct CheckpointTensors {
  const Llama* model = nullptr;
  Tensor m, v;  // AdamW moments, flat, same layout as the model's parameters
};

// Writes RUN_DIR/checkpoints/step-XXXXXXXX (manifest.json, model.safetensors,
// optim.safetensors, and a copy of the tokenizer when tokenizer_path is not empty),
// then points RUN_DIR/checkpoints/latest at it and prunes all but the newest keep_last.
// Returns the checkpoint's path. Same as begin_checkpoint, then commit_checkpoint.
std::string save_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                            const CheckpointTensors& tensors, const std::string& tokenizer_path,
                            int keep_last);

// The two halves of save_checkpoint, for ZeRO-1 where every rank adds its moments shard
// in between (rank 0: begin; barrier; every rank: write_moment_shard; barrier; rank 0:
// commit). begin_checkpoint (re)creates and returns the step's temporary directory
// RUN_DIR/checkpoints/.tmp-step-XXXXXXXX; checkpoint_staging_dir names it without touching
// anything. commit_checkpoint adds the weights, optim.safetensors when tensors.m is given,
// the tokenizer and the manifest, then renames the directory and moves `latest`.
std::string checkpoint_staging_dir(const std::string& run_dir, int64_t step);
std::string begin_checkpoint(const std::string& run_dir, int64_t step);
std::string commit_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                              const CheckpointTensors& tensors, const std::string& tokenizer_path,
                              int keep_last);

// "optim-rank{rank}-of-{world_size}.safetensors"
std::string moment_shard_file_name(int rank, int world_size);

// Writes rank's ZeRO-1 moments shard into staging_dir: flat 1-D f32 tensors "m" and "v"
// (m.numel() elements each) holding flat elements [offset, offset + m.numel()) of the
// parameter layout, with metadata offset, length, rank and world_size.
void write_moment_shard(const std::string& staging_dir, int rank, int world_size,
                        int64_t offset, const Tensor& m, const Tensor& v, Backend& backend);

// The newest complete checkpoint of a run: the one `latest` names, or when that pointer is
// missing or names no complete checkpoint (a warning says so), the highest step-* directory
// holding a manifest. nullopt if none. A `latest` that is not a pointer meap could have
// written (a directory, garbage) is refused with an error saying what to do.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);
// step-* directories of the run without a manifest.json: not written by meap (its rename
// is atomic), so damaged from outside. A run refuses to start over them.
std::vector<std::string> incomplete_checkpoints(const std::string& run_dir);

// Reads and checks manifest.json (its own checksum included: a damaged manifest is refused
// naming it).
CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir);
// Writes checkpoint_dir/manifest.json atomically (commit_checkpoint and `meap import`),
// recording the checksum of every other file in checkpoint_dir.
void write_checkpoint_manifest(const std::string& checkpoint_dir,
                               const CheckpointManifest& manifest);
// Throws meap::Error naming the file unless checkpoint_dir/name has the checksum its
// manifest recorded (every loader calls it before reading a file: weights, moments,
// tokenizer). A version-1 checkpoint has none: a warning says it is loaded unverified.
void verify_checkpoint_file(const std::string& checkpoint_dir, const CheckpointManifest& manifest,
                            const std::string& name);
// checkpoint.init_from: loads the weights of the checkpoint, run directory (its latest) or
// `meap import` output at `path` into model (the fp32 master; the working copy re-synced),
// refusing one whose model section differs from model.config() in anything but init_std and
// max_seq_len (neither shapes a weight).
// Returns the checkpoint directory used.
std::string load_initial_weights(const std::string& path, Llama& model);
// A checkpoint directory as given (it holds manifest.json), or the latest complete
// checkpoint of a run directory; throws naming the path otherwise.
std::string resolve_checkpoint_dir(const std::string& path);

// Loads weights (and the moments, when m and v are given) into an already built model.
// Refuses a checkpoint of another model shape, naming the tensor. m and v (1-D or the
// model's flat length) hold flat elements [moments_offset, moments_offset + m.numel()) of
// the parameter layout: the whole layout without ZeRO-1, one rank's shard with it. They
// are filled from whatever the checkpoint holds -- optim.safetensors (per tensor) or the
// ZeRO-1 shard files of any world size -- reading only the overlapping parts; elements of
// no parameter (padding) are set to zero.
void load_checkpoint_tensors(const std::string& checkpoint_dir, Llama& model, const Tensor& m,
                             const Tensor& v, int64_t moments_offset = 0);

}  // namespace meap
