// BatchSource: where the trainer's batches come from -- token shards (pre-training, a
// TokenStreamer over data.train / data.val) or SFT shards (fine-tuning, an SftStreamer over
// sft.train / sft.val) -- behind one small interface, so that the training loop, validation
// and checkpoints read both alike. Either way the position (epoch, batch) is the whole state
// a checkpoint keeps, and the batches of a position are the same on any number of ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "meap/data/token_shard.hpp"     // SpecialTokens
#include "meap/data/token_streamer.hpp"  // StreamerState
#include "meap/model/llama.hpp"          // PackedDocuments
#include "meap/train/config.hpp"

namespace meap {

// This rank's slice of one global batch: (batch_size, seq_len) row-major arrays, valid until
// the source's next next() or restore().
struct BatchView {
  int64_t batch_size = 0, seq_len = 0;
  const int32_t* inputs = nullptr;   // [MASK]ed where the data masks
  const int32_t* targets = nullptr;  // clean
  const float* weights = nullptr;    // loss weights
  // Packed documents (SFT rows; token rows under data.document_mask): each position's
  // segment and RoPE position. Both null when every row is one causal sequence.
  const int32_t* segment_ids = nullptr;
  const int32_t* positions = nullptr;

  // The documents of the rows from flat position `offset` on (a micro-batch's), as
  // Llama::forward takes them.
  PackedDocuments documents(int64_t offset) const {
    return {segment_ids ? segment_ids + offset : nullptr, positions ? positions + offset : nullptr};
  }
};

// What a source's shards were made with (their first shard's header): checked against the
// tokenizer and the model before the first step.
struct ShardIdentity {
  std::string key;   // the config key that names the shards: "data.train", "sft.val", ...
  std::string glob;  // its value
  std::string path;  // the first shard
  int64_t vocab_size = 0;
  SpecialTokens special;
  uint64_t tokenizer_checksum = 0;  // XXH3-64 of the tokenizer file, 0 when not recorded
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next batch; rethrows errors of a prefetch thread.
  virtual BatchView next() = 0;
  // The position of the batch next() returns next.
  virtual StreamerState state() const = 0;
  virtual void restore(StreamerState state) = 0;
  // Global batches of `epoch` (SFT rows are packed in each epoch's sample order, so their
  // count can differ a little between epochs; token data has the same count every epoch).
  virtual uint64_t batches_in_epoch(uint64_t epoch) const = 0;
  virtual const ShardIdentity& identity() const = 0;
};

// The run's training batches (`train`: shuffled, masked, prefetched) or validation batches
// (in order, never masked) on rank `rank` of `world_size`: SFT shards in an SFT run
// (is_sft_run), token shards otherwise. Returns null for validation when the run names no
// validation shards; refuses a run without training shards, naming the key.
std::unique_ptr<BatchSource> open_batch_source(const Config& config, bool train, int rank,
                                               int world_size);

}  // namespace meap
