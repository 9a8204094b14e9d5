#include "meap/data/token_streamer.hpp"

#include <algorithm>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"

namespace meap {

constexpr uint32_t kShuffleDomain = 0x53485546u;  // "SHUF": keeps the shuffle stream apart

void document_segments(const int32_t* tokens, int64_t seq_len, int32_t eos, int32_t* segments,
                       int32_t* positions) {
  int32_t segment = 0, position = 0;
  for (int64_t t = 0; t < seq_len; ++t) {
    segments[t] = segment;
    positions[t] = position++;
    if (tokens[t] == eos) {  // the EOS closes its document; the next position opens one
      ++segment;
      position = 0;
    }
  }
}

TokenStreamer::TokenStreamer(StreamerConfig config)
    : config_(std::move(config)),
      pipeline_([this](TokenBatch& b, StreamerState at) { fill(b, at); },
                [this](StreamerState at) { return advance(at); }) {
  const StreamerConfig& c = config_;
  local_batch_ = check_batch_geometry(c.seq_len, c.global_batch_size, c.rank, c.world_size,
                                      c.prefetch);
  paths_ = expand_shard_glob(c.pattern, "token",
                             "run `meap prepare`, or check data.train / data.val");
  std::vector<ShardInfo> infos;
  starts_.push_back(0);
  for (const std::string& p : paths_) {
    readers_.push_back(ShardReader::open(p));
    infos.push_back(readers_.back().info());
    starts_.push_back(starts_.back() + readers_.back().size());
  }
  check_shards_compatible(infos, paths_);
  total_tokens_ = starts_.back();
  // Sequence s covers tokens [s T, s T + T]: consecutive sequences share one token, the
  // last target of one being the first input of the next.
  sequences_ = total_tokens_ > 0 ? (total_tokens_ - 1) / c.seq_len : 0;
  if (sequences_ < static_cast<uint64_t>(c.global_batch_size))
    fail("the shards matching '", c.pattern, "' hold ", total_tokens_, " tokens: ", sequences_,
         " sequences of data.seq_len ", c.seq_len, ", fewer than one global batch of ",
         c.global_batch_size, " (prepare more data or lower train.global_batch_size)");

  const SpecialTokens& special = infos.front().special;
  if (c.document_mask && special.eos < 0)
    fail("data.document_mask: the shards matching '", c.pattern,
         "' define no EOS id, so they have no document boundaries to stop attention at");
  MaskerConfig m;
  m.mask_ratio = c.mask_ratio;
  m.mask_id = special.mask;
  m.keep_special_unmasked = c.keep_special_unmasked;
  m.sampling = c.mask_sampling;
  m.bos_id = special.bos;
  m.eos_id = special.eos;
  m.seed = c.seed;
  masker_ = std::make_unique<MeapMasker>(m);

  TokenBatch shape;
  shape.batch_size = local_batch_;
  shape.seq_len = c.seq_len;
  shape.inputs.resize(local_batch_ * c.seq_len);
  shape.targets.resize(local_batch_ * c.seq_len);
  shape.weights.resize(local_batch_ * c.seq_len);
  shape.global_index.resize(local_batch_);
  if (c.document_mask) {
    shape.segment_ids.resize(local_batch_ * c.seq_len);
    shape.positions.resize(local_batch_ * c.seq_len);
  }
  pipeline_.set_slots(c.prefetch, shape);
  restore(StreamerState{});
}

TokenStreamer::~TokenStreamer() = default;

// A keyed pseudo-random permutation of [0, S) per epoch (philox_permute: a Feistel network,
// nothing stored, any index in O(1)).
uint64_t TokenStreamer::sequence_at(uint64_t epoch, uint64_t index) const {
  if (!config_.shuffle || sequences_ <= 1) return index;
  PhiloxKey key = philox_key(config_.seed);
  key[1] ^= kShuffleDomain;
  return philox_permute(key, static_cast<uint32_t>(epoch), index, sequences_);
}

void TokenStreamer::read_tokens(uint64_t offset, int64_t n, int32_t* out) const {
  // The shard holding `offset`, then as many following shards as the range spans.
  size_t s = std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin() - 1;
  while (n > 0) {
    const uint64_t local = offset - starts_[s];
    const int64_t take = std::min<int64_t>(n, readers_[s].size() - local);
    readers_[s].read(local, take, out);
    out += take;
    offset += take;
    n -= take;
    ++s;
  }
}

void TokenStreamer::fill(TokenBatch& batch, StreamerState position) const {
  const int64_t T = config_.seq_len;
  thread_local std::vector<int32_t> tokens;  // (T + 1) clean tokens of one sequence
  tokens.resize(T + 1);
  batch.position = position;
  // The optimizer step this batch is consumed at, counted from 0 (the trainer's step - 1):
  // authors_code draws one mask pattern per step, the same on every rank and micro-batch.
  const uint64_t step = position.epoch * batches_per_epoch() + position.batch;
  for (int64_t i = 0; i < local_batch_; ++i) {
    const uint64_t index = position.batch * config_.global_batch_size +
                           static_cast<uint64_t>(config_.rank) * local_batch_ + i;
    batch.global_index[i] = index;
    read_tokens(sequence_at(position.epoch, index) * T, T + 1, tokens.data());
    masker_->make_example(tokens.data(), T, position.epoch, index, batch.inputs.data() + i * T,
                          batch.targets.data() + i * T, batch.weights.data() + i * T, step);
    // From the clean tokens: a masked EOS still ends its document.
    if (config_.document_mask)
      document_segments(tokens.data(), T, shard_info().special.eos,
                        batch.segment_ids.data() + i * T, batch.positions.data() + i * T);
  }
}

StreamerState TokenStreamer::advance(StreamerState s) const {
  if (++s.batch == batches_per_epoch()) {
    s.batch = 0;
    ++s.epoch;
  }
  return s;
}

const TokenBatch& TokenStreamer::next() { return pipeline_.next(); }

StreamerState TokenStreamer::state() const { return pipeline_.state(); }

void TokenStreamer::restore(StreamerState state) {
  if (state.batch >= batches_per_epoch())
    fail("streamer position batch ", state.batch, " is past the end of an epoch (",
         batches_per_epoch(), " batches): the checkpoint was made with other data or "
         "another train.global_batch_size");
  pipeline_.restore(state);
}

}  // namespace meap
