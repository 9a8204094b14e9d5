// SftStreamer: reads SFT shards, orders the samples by a seeded per-epoch permutation, packs
// their documents (SftBuilder) into rows of seq_len positions -- each document its own
// segment with positions from 0, padding only at the end of a row -- and hands each rank
// its slice of every global batch of rows. Like the TokenStreamer, (epoch, batch) is all the
// state a checkpoint needs, and any rank count sees the same rows and masks.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "meap/data/sft_builder.hpp"
#include "meap/data/sft_shard.hpp"
#include "meap/data/token_streamer.hpp"  // StreamerState

namespace meap {

struct SftStreamerConfig {
  std::string pattern;            // glob of SFT shard files
  int64_t seq_len = 0;            // T: positions per packed row
  int64_t global_batch_size = 0;  // rows per global batch, over all ranks
  int rank = 0, world_size = 1;   // this process takes rows [rank * B, (rank + 1) * B)
  bool shuffle = true;            // false: samples in shard order (validation)
  SftOptions sft;                 // the layout and masks; sft.seed also keys the shuffle
  int prefetch = 2;               // batches prepared ahead; 0 = on the caller's thread
};

// This rank's slice of one global batch. Row i is global row rank * batch_size + i.
// Every array is (batch_size, seq_len), row-major.
struct SftBatch {
  int64_t batch_size = 0, seq_len = 0;
  StreamerState position;
  std::vector<int32_t> inputs;       // [MASK] applied in MEAP copies; PAD after the last document
  std::vector<int32_t> targets;      // always clean
  std::vector<float> weights;        // loss weights: 1 or 0 (padding 0)
  std::vector<int32_t> segment_ids;  // 0, 1, ... per document; the padding is one more segment
  std::vector<int32_t> positions;    // RoPE positions, from 0 in every segment
  std::vector<uint64_t> global_row;  // (batch_size): epoch-local row index
};

class SftStreamer {
 public:
  // Opens and validates every shard; refuses an empty glob, incompatible shards, a document
  // longer than seq_len under the options (naming how many and the fix), and data too small
  // for one global batch.
  explicit SftStreamer(SftStreamerConfig config);
  ~SftStreamer();
  SftStreamer(const SftStreamer&) = delete;
  SftStreamer& operator=(const SftStreamer&) = delete;

  // The next batch; valid until the next call to next() or restore(). Rethrows errors of
  // the prefetch thread.
  const SftBatch& next();
  StreamerState state() const;
  // Continue from a saved position; refuses a batch past the end of that epoch.
  void restore(StreamerState state);

  const SftShardInfo& shard_info() const { return readers_.front().info(); }
  const std::vector<std::string>& paths() const { return paths_; }
  const SftBuilder& builder() const { return *builder_; }
  uint64_t n_samples() const { return starts_.back(); }
  // Rows and global batches of an epoch: the packing follows the epoch's sample order, so
  // they can differ a little from epoch to epoch.
  uint64_t rows_in_epoch(uint64_t epoch) const;
  uint64_t batches_in_epoch(uint64_t epoch) const;
  // The sample (index in shard order) at position `index` of `epoch`'s order.
  uint64_t sample_at(uint64_t epoch, uint64_t index) const;

 private:
  // Rows of one epoch: row r holds the document units [row_start[r], row_start[r + 1]), unit
  // 2 i + d being document d of the sample at epoch position i (units of absent documents
  // are skipped).
  struct EpochPlan {
    uint64_t epoch = 0;
    std::vector<uint64_t> row_start;
  };
  std::shared_ptr<const EpochPlan> plan(uint64_t epoch) const;
  void fill(SftBatch& batch, StreamerState position) const;
  void fill_row(const EpochPlan& plan, uint64_t row, int32_t* inputs, int32_t* targets,
                float* weights, int32_t* segments, int32_t* positions) const;
  void locate(uint64_t sample, size_t& shard, uint64_t& local) const;
  StreamerState advance(StreamerState s) const;

  SftStreamerConfig config_;
  std::unique_ptr<SftBuilder> builder_;  // needs the shards' [MASK] id
  std::vector<std::string> paths_;
  std::vector<SftShardReader> readers_;
  std::vector<uint64_t> starts_;  // (n_shards + 1) cumulative sample counts
  std::vector<uint32_t> sample_tokens_, sample_answers_;  // (n_samples), shard order
  int64_t local_batch_ = 0;
  int32_t pad_id_ = 0;

  mutable std::mutex plan_mutex_;
  mutable std::shared_ptr<const EpochPlan> plans_[2];  // the two most recent epochs
  PrefetchPipeline<SftBatch> pipeline_;  // last: its worker stops before the rest goes
};

}  // namespace meap
