// TokenStreamer: reads token shards as one stream, cuts it into training sequences, orders
// them by a seeded per-epoch permutation, and hands each rank its slice of every global
// batch, MEAP-masked, from a background prefetch thread. Its position (epoch, batch) is all
// the state a checkpoint needs to resume on exactly the same next batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meap/data/meap_masker.hpp"
#include "meap/data/streamer_pipeline.hpp"
#include "meap/data/token_shard.hpp"

namespace meap {

struct StreamerConfig {
  std::string pattern;            // glob of shard files (data.train / data.val)
  int64_t seq_len = 0;            // T: each sequence is T + 1 tokens (inputs and targets)
  int64_t global_batch_size = 0;  // sequences per global batch, over all ranks
  int rank = 0, world_size = 1;   // this process takes slots [rank * B, (rank + 1) * B)
  uint64_t seed = 0;              // run.seed: the shuffle and the masks
  bool shuffle = true;            // false: sequences in stream order (validation)
  double mask_ratio = 0.0;        // data.meap.mask_ratio
  bool keep_special_unmasked = false;
  MaskSampling mask_sampling = MaskSampling::per_sequence;  // data.meap.sampling
  bool document_mask = false;     // data.document_mask: fill segment_ids and positions
  int prefetch = 2;               // batches prepared ahead; 0 = on the caller's thread
};

// Where the stream stands: the next batch served is batch `batch` of epoch `epoch`.
struct StreamerState {
  uint64_t epoch = 0;
  uint64_t batch = 0;
  bool operator==(const StreamerState&) const = default;
};

// This rank's slice of one global batch. Row i is global slot rank * batch_size + i.
struct TokenBatch {
  int64_t batch_size = 0, seq_len = 0;
  StreamerState position;               // which batch this is
  std::vector<int32_t> inputs;          // (batch_size, seq_len), masked
  std::vector<int32_t> targets;         // (batch_size, seq_len), clean
  std::vector<float> weights;           // (batch_size, seq_len), loss weights
  // (batch_size, seq_len) each, filled only under data.document_mask (else empty): the
  // document of each position and its RoPE position in it (document_segments).
  std::vector<int32_t> segment_ids, positions;
  std::vector<uint64_t> global_index;   // (batch_size): epoch-local position of each row
};

// The documents of one sequence, from its clean inputs tokens[0, T) (before any [MASK]): a
// new document starts after each EOS, so an EOS is the last position of the document it
// closes (as in torchtitan and Megatron). segments[t] = the number of EOS in tokens[0, t),
// positions[t] = t minus the position after the last such EOS (t when there is none): the
// row's first document, usually the tail of one begun in the previous sequence, counts
// from 0 at the row's start. A pure function of the tokens; eos >= 0.
void document_segments(const int32_t* tokens, int64_t seq_len, int32_t eos, int32_t* segments,
                       int32_t* positions);

class TokenStreamer {
 public:
  // Opens and validates every shard; refuses an empty glob, incompatible shards, and a
  // stream too short for one global batch, naming the pattern.
  explicit TokenStreamer(StreamerConfig config);
  ~TokenStreamer();
  TokenStreamer(const TokenStreamer&) = delete;
  TokenStreamer& operator=(const TokenStreamer&) = delete;

  // The next batch; the reference stays valid until the following call to next() or
  // restore(). Rethrows any error met by the prefetch thread.
  const TokenBatch& next();

  // The position of the next batch next() will return.
  StreamerState state() const;
  // Continue from a saved position (as returned by state()).
  void restore(StreamerState state);

  const ShardInfo& shard_info() const { return readers_.front().info(); }
  const std::vector<std::string>& paths() const { return paths_; }
  uint64_t total_tokens() const { return total_tokens_; }
  uint64_t sequences_per_epoch() const { return sequences_; }
  uint64_t batches_per_epoch() const { return sequences_ / config_.global_batch_size; }
  int64_t local_batch_size() const { return local_batch_; }

  // Sequence (data order) that epoch-local position `index` of `epoch` reads.
  uint64_t sequence_at(uint64_t epoch, uint64_t index) const;

 private:
  void fill(TokenBatch& batch, StreamerState position) const;
  void read_tokens(uint64_t offset, int64_t n, int32_t* out) const;
  StreamerState advance(StreamerState s) const;

  StreamerConfig config_;
  std::vector<std::string> paths_;
  std::vector<ShardReader> readers_;
  std::vector<uint64_t> starts_;  // (n_shards + 1) cumulative token offsets
  uint64_t total_tokens_ = 0, sequences_ = 0;
  int64_t local_batch_ = 0;
  std::unique_ptr<MeapMasker> masker_;
  PrefetchPipeline<TokenBatch> pipeline_;  // last: its worker stops before the rest goes
};

}  // namespace meap
