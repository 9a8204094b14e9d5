// Trainer: the `meap train` loop -- gradient accumulation over the global batch, AdamW
// with warmup + cosine, clipping, validation, metrics, checkpoints, exact resume, and a
// clean stop on request (SIGTERM / SIGINT) or a clear error on a NaN.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "meap/train/config.hpp"
#include "meap/data/sft_streamer.hpp"
#include "meap/data/token_streamer.hpp"

namespace meap {

struct TrainerOptions {
  bool resume = false;                    // continue from the run's latest checkpoint
  std::function<bool()> stop_requested;   // polled after every step (signal handlers)
  bool quiet = false;                     // no console lines (tests)
  // --allow-config-change: a resume may change keys outside resume_safe_config_keys();
  // the changes are logged and recorded in every later checkpoint's manifest.
  bool allow_config_change = false;
};

// Keys a --resume may change without --allow-config-change: they change when and how the
// run is computed and reported, not what it computes (the stopping step, intervals, the
// device, precision and recomputation, how ranks combine gradients).
const std::vector<std::string>& resume_safe_config_keys();

struct TrainResult {
  int64_t start_step = 0;  // the step training started after (0, or the resumed one)
  int64_t final_step = 0;
  double last_train_loss = 0;
  double last_val_loss = -1;  // -1 when no validation ran
  std::string checkpoint;     // the last one written
  bool interrupted = false;   // stopped on request before max_steps
};

TrainResult train(const Config& config, const TrainerOptions& options);

// The streamer `meap train` reads on rank `rank` of `world_size`: the training data
// (shuffled, MEAP-masked, prefetched) when `train`, else the validation data (in order,
// unmasked). Shared with `meap batches`, so the batches it writes are the run's own.
StreamerConfig streamer_config(const Config& config, bool train, int rank, int world_size);
// The same for an SFT run: sft.train (shuffled, MEAP-SFT masks of sft.*, prefetched) or
// sft.val (in order, mask_ratio 0: held-out answers in the NTP layout).
SftStreamerConfig sft_streamer_config(const Config& config, bool train, int rank,
                                      int world_size);

}  // namespace meap
