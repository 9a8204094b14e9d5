// The two batch sources: token shards and SFT shards, each a thin adapter of its streamer.
#include "meap/train/batch_source.hpp"

#include "meap/core/error.hpp"
#include "meap/data/sft_streamer.hpp"
#include "meap/train/trainer.hpp"  // streamer_config, sft_streamer_config

namespace meap {

namespace {

template <class Info>
ShardIdentity identity_of(std::string key, std::string glob, const std::string& path,
                          const Info& info) {
  ShardIdentity id;
  id.key = std::move(key);
  id.glob = std::move(glob);
  id.path = path;
  id.vocab_size = info.vocab_size;
  id.special = info.special;
  id.tokenizer_checksum = info.tokenizer_checksum;
  return id;
}

class TokenBatchSource final : public BatchSource {
 public:
  TokenBatchSource(StreamerConfig config, const char* key)
      : stream_(config),
        identity_(identity_of(key, config.pattern, stream_.paths().front(), stream_.shard_info())) {}

  BatchView next() override {
    const TokenBatch& b = stream_.next();
    const bool packed = !b.segment_ids.empty();  // data.document_mask
    return {b.batch_size,
            b.seq_len,
            b.inputs.data(),
            b.targets.data(),
            b.weights.data(),
            packed ? b.segment_ids.data() : nullptr,
            packed && !b.positions.empty() ? b.positions.data() : nullptr};
  }
  StreamerState state() const override { return stream_.state(); }
  void restore(StreamerState state) override { stream_.restore(state); }
  uint64_t batches_in_epoch(uint64_t) const override { return stream_.batches_per_epoch(); }
  const ShardIdentity& identity() const override { return identity_; }

 private:
  TokenStreamer stream_;
  ShardIdentity identity_;
};

class SftBatchSource final : public BatchSource {
 public:
  SftBatchSource(SftStreamerConfig config, const char* key)
      : stream_(config),
        identity_(identity_of(key, config.pattern, stream_.paths().front(), stream_.shard_info())) {}

  BatchView next() override {
    const SftBatch& b = stream_.next();
    return {b.batch_size,         b.seq_len,           b.inputs.data(),   b.targets.data(),
            b.weights.data(),     b.segment_ids.data(), b.positions.data()};
  }
  StreamerState state() const override { return stream_.state(); }
  void restore(StreamerState state) override { stream_.restore(state); }
  uint64_t batches_in_epoch(uint64_t epoch) const override {
    return stream_.batches_in_epoch(epoch);
  }
  const ShardIdentity& identity() const override { return identity_; }

 private:
  SftStreamer stream_;
  ShardIdentity identity_;
};

}  // namespace

std::unique_ptr<BatchSource> open_batch_source(const Config& cfg, bool train, int rank,
                                               int world_size) {
  if (is_sft_run(cfg)) {
    if (!train && cfg.sft.val.empty()) return nullptr;
    return std::make_unique<SftBatchSource>(sft_streamer_config(cfg, train, rank, world_size),
                                            train ? "sft.train" : "sft.val");
  }
  if (train && cfg.data.train.empty())
    fail("data.train is empty: give the glob of the training shards (or sft.train, the SFT "
         "shards of a fine-tuning run)");
  if (!train && cfg.data.val.empty()) return nullptr;
  return std::make_unique<TokenBatchSource>(streamer_config(cfg, train, rank, world_size),
                                            train ? "data.train" : "data.val");
}

}  // namespace meap
