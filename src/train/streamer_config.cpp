// The streamers `meap train` reads (token shards, or SFT shards in an SFT run), built from
// the run config. Outside trainer.cpp so that
// `meap batches` cuts exactly the training run's batches from the same function.
#include "meap/train/trainer.hpp"

namespace meap {

StreamerConfig streamer_config(const Config& cfg, bool train, int rank, int world_size) {
  StreamerConfig s;
  s.rank = rank;
  s.world_size = world_size;
  s.pattern = train ? cfg.data.train : cfg.data.val;
  s.seq_len = cfg.data.seq_len;
  s.global_batch_size = cfg.train.global_batch_size;  // validation too: world-size invariant
  s.seed = cfg.run.seed;
  s.shuffle = train;
  s.mask_ratio = train ? cfg.data.meap.mask_ratio : 0.0;  // validation reads clean inputs
  s.keep_special_unmasked = cfg.data.meap.keep_special_unmasked;
  s.mask_sampling = cfg.data.meap.sampling;
  s.document_mask = cfg.data.document_mask;  // validation too: the same attention
  s.prefetch = train ? 2 : 0;
  return s;
}

SftStreamerConfig sft_streamer_config(const Config& cfg, bool train, int rank, int world_size) {
  SftStreamerConfig s;
  s.rank = rank;
  s.world_size = world_size;
  s.pattern = train ? cfg.sft.train : cfg.sft.val;
  s.seq_len = cfg.data.seq_len;
  s.global_batch_size = cfg.train.global_batch_size;  // validation too: world-size invariant
  s.shuffle = train;
  // Validation: the held-out answers in the NTP layout, without masks (mask_ratio 0).
  s.sft = sft_options(cfg.sft, cfg.run.seed, train);
  s.prefetch = train ? 2 : 0;
  return s;
}

}  // namespace meap
