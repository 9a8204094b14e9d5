#include "meap/data/token_streamer.hpp"

#include <glob.h>

#include <algorithm>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"

namespace meap {

namespace {

constexpr uint32_t kShuffleDomain = 0x53485546u;  // "SHUF": keeps the shuffle stream apart

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> paths;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (paths.empty())
    fail("no token shards match '", pattern,
         "' (run `meap prepare`, or check data.train / data.val)");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

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

TokenStreamer::TokenStreamer(StreamerConfig config) : config_(std::move(config)) {
  const StreamerConfig& c = config_;
  if (c.seq_len <= 0) fail("data.seq_len must be positive, got ", c.seq_len);
  if (c.world_size <= 0 || c.rank < 0 || c.rank >= c.world_size)
    fail("rank ", c.rank, " is outside a world of ", c.world_size);
  if (c.global_batch_size <= 0 || c.global_batch_size % c.world_size != 0)
    fail("train.global_batch_size (", c.global_batch_size,
         ") must be a positive multiple of the number of ranks (", c.world_size, ")");
  if (c.prefetch < 0) fail("prefetch depth must be >= 0, got ", c.prefetch);
  local_batch_ = c.global_batch_size / c.world_size;

  paths_ = expand_glob(c.pattern);
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
  m.bos_id = special.bos;
  m.eos_id = special.eos;
  m.seed = c.seed;
  masker_ = std::make_unique<MeapMasker>(m);

  slots_.resize(c.prefetch + 1);
  for (TokenBatch& b : slots_) {
    b.batch_size = local_batch_;
    b.seq_len = c.seq_len;
    b.inputs.resize(local_batch_ * c.seq_len);
    b.targets.resize(local_batch_ * c.seq_len);
    b.weights.resize(local_batch_ * c.seq_len);
    b.global_index.resize(local_batch_);
    if (c.document_mask) {
      b.segment_ids.resize(local_batch_ * c.seq_len);
      b.positions.resize(local_batch_ * c.seq_len);
    }
  }
  restore(StreamerState{});
}

TokenStreamer::~TokenStreamer() { stop_worker(); }

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
  for (int64_t i = 0; i < local_batch_; ++i) {
    const uint64_t index = position.batch * config_.global_batch_size +
                           static_cast<uint64_t>(config_.rank) * local_batch_ + i;
    batch.global_index[i] = index;
    read_tokens(sequence_at(position.epoch, index) * T, T + 1, tokens.data());
    masker_->make_example(tokens.data(), T, position.epoch, index, batch.inputs.data() + i * T,
                          batch.targets.data() + i * T, batch.weights.data() + i * T);
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

const TokenBatch& TokenStreamer::next() {
  if (config_.prefetch == 0) {
    fill(slots_[0], consume_at_);
    consume_at_ = advance(consume_at_);
    return slots_[0];
  }
  std::unique_lock lock(mutex_);
  if (in_use_ >= 0) {
    free_.push_back(in_use_);
    in_use_ = -1;
    cv_.notify_all();
  }
  cv_.wait(lock, [&] { return !ready_.empty() || worker_error_; });
  if (ready_.empty()) std::rethrow_exception(worker_error_);
  in_use_ = ready_.front();
  ready_.pop_front();
  consume_at_ = advance(slots_[in_use_].position);
  return slots_[in_use_];
}

StreamerState TokenStreamer::state() const {
  std::lock_guard lock(mutex_);
  return consume_at_;
}

void TokenStreamer::restore(StreamerState state) {
  if (state.batch >= batches_per_epoch())
    fail("streamer position batch ", state.batch, " is past the end of an epoch (",
         batches_per_epoch(), " batches): the checkpoint was made with other data or "
         "another train.global_batch_size");
  stop_worker();
  ready_.clear();
  free_.clear();
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) free_.push_back(i);
  in_use_ = -1;
  worker_error_ = nullptr;
  produce_at_ = consume_at_ = state;
  if (config_.prefetch > 0) start_worker();
}

void TokenStreamer::start_worker() {
  stopping_ = false;
  worker_ = std::thread([this] { worker_loop(); });
}

void TokenStreamer::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void TokenStreamer::worker_loop() {
  for (;;) {
    int slot;
    StreamerState position;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !free_.empty(); });
      if (stopping_) return;
      slot = free_.front();
      free_.pop_front();
      position = produce_at_;
      produce_at_ = advance(produce_at_);
    }
    try {
      fill(slots_[slot], position);
    } catch (...) {
      std::lock_guard lock(mutex_);
      worker_error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard lock(mutex_);
    ready_.push_back(slot);
    cv_.notify_all();
  }
}

}  // namespace meap
