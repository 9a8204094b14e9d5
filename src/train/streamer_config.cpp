// The streamers `meap train` reads, built from the run config. Outside trainer.cpp so that
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

}  // namespace meap
