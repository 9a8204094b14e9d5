#include "meap/data/sft_streamer.hpp"

#include <algorithm>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"

namespace meap {

constexpr uint32_t kSftShuffleDomain = 0x53465453u;  // "SFTS": the sample order

SftStreamer::SftStreamer(SftStreamerConfig config)
    : config_(std::move(config)),
      pipeline_([this](SftBatch& b, StreamerState at) { fill(b, at); },
                [this](StreamerState at) { return advance(at); }) {
  const SftStreamerConfig& c = config_;
  local_batch_ = check_batch_geometry(c.seq_len, c.global_batch_size, c.rank, c.world_size,
                                      c.prefetch);
  paths_ = expand_shard_glob(c.pattern, "SFT", "run `meap prepare --sft`");
  std::vector<SftShardInfo> infos;
  starts_.push_back(0);
  for (const std::string& p : paths_) {
    readers_.push_back(SftShardReader::open(p));
    infos.push_back(readers_.back().info());
    starts_.push_back(starts_.back() + readers_.back().n_samples());
  }
  check_sft_shards_compatible(infos, paths_);
  const SpecialTokens& special = infos.front().special;
  pad_id_ = special.pad >= 0 ? special.pad : special.eos;
  builder_ = std::make_unique<SftBuilder>(c.sft, special.mask);
  if (n_samples() == 0) fail("the SFT shards matching '", c.pattern, "' hold no sample");

  // Every document must fit a row: checked here, once, instead of in the middle of a run.
  uint64_t too_long = 0, meap_too_long = 0;
  int64_t longest = 0;
  sample_tokens_.reserve(n_samples());
  sample_answers_.reserve(n_samples());
  for (const SftShardReader& r : readers_)
    for (uint64_t i = 0; i < r.n_samples(); ++i) {
      const int64_t n = r.sample_tokens(i), a = r.answer_tokens(i);
      sample_tokens_.push_back(static_cast<uint32_t>(n));
      sample_answers_.push_back(static_cast<uint32_t>(a));
      const SftShape s = builder_->shape(n, a);
      if (s.length[0] > c.seq_len) {
        ++too_long;
        meap_too_long += s.meap;
        longest = std::max(longest, s.length[0]);
      }
    }
  if (too_long > 0) {
    if (meap_too_long == too_long)
      fail(too_long, " of the ", n_samples(), " SFT samples in '", c.pattern,
           "' do not fit data.seq_len ", c.seq_len, " in the MEAP concat layout (the longest "
           "needs ", longest, " positions: a sample of n tokens and its masked copy take 2n - 1); "
           "re-run `meap prepare --sft --seq-len ", (c.seq_len + 1) / 2 - 1,
           "`, raise data.seq_len, or use sft.layout: separate");
    fail(too_long, " of the ", n_samples(), " SFT samples in '", c.pattern,
         "' do not fit data.seq_len ", c.seq_len, " (the longest needs ", longest,
         " positions); re-run `meap prepare --sft` with --seq-len ", c.seq_len,
         " or raise data.seq_len");
  }
  if (batches_in_epoch(0) == 0)
    fail("the SFT samples in '", c.pattern, "' pack into ", rows_in_epoch(0),
         " rows of data.seq_len ", c.seq_len, ", fewer than one global batch of ",
         c.global_batch_size, " (add data or lower train.global_batch_size)");

  const size_t cells = static_cast<size_t>(local_batch_ * c.seq_len);
  SftBatch shape;
  shape.batch_size = local_batch_;
  shape.seq_len = c.seq_len;
  shape.inputs.resize(cells);
  shape.targets.resize(cells);
  shape.weights.resize(cells);
  shape.segment_ids.resize(cells);
  shape.positions.resize(cells);
  shape.global_row.resize(local_batch_);
  pipeline_.set_slots(c.prefetch, shape);
  restore(StreamerState{});
}

SftStreamer::~SftStreamer() = default;

uint64_t SftStreamer::sample_at(uint64_t epoch, uint64_t index) const {
  if (!config_.shuffle) return index;
  PhiloxKey key = philox_key(config_.sft.seed);
  key[1] ^= kSftShuffleDomain;
  return philox_permute(key, static_cast<uint32_t>(epoch), index, n_samples());
}

// Greedy packing in the epoch's sample order: a document that does not fit the rest of the
// row starts the next row (the rest becomes padding). Documents are never split or reordered.
std::shared_ptr<const SftStreamer::EpochPlan> SftStreamer::plan(uint64_t epoch) const {
  {
    std::lock_guard lock(plan_mutex_);
    for (const auto& p : plans_)
      if (p && p->epoch == epoch) return p;
  }
  if (epoch > UINT32_MAX) fail("SFT streamer: epoch must be < 2^32, got ", epoch);
  auto p = std::make_shared<EpochPlan>();
  p->epoch = epoch;
  p->row_start.push_back(0);
  const int64_t T = config_.seq_len;
  int64_t used = 0;
  const uint64_t S = n_samples();
  for (uint64_t i = 0; i < S; ++i) {
    const uint64_t s = sample_at(epoch, i);
    const SftShape shape = builder_->shape(sample_tokens_[s], sample_answers_[s]);
    for (int d = 0; d < shape.n_documents; ++d) {
      if (used + shape.length[d] > T) {
        p->row_start.push_back(2 * i + d);
        used = 0;
      }
      used += shape.length[d];
    }
  }
  p->row_start.push_back(2 * S);
  std::lock_guard lock(plan_mutex_);
  plans_[1] = std::move(plans_[0]);
  plans_[0] = p;
  return p;
}

uint64_t SftStreamer::rows_in_epoch(uint64_t epoch) const {
  return plan(epoch)->row_start.size() - 1;
}

uint64_t SftStreamer::batches_in_epoch(uint64_t epoch) const {
  return rows_in_epoch(epoch) / static_cast<uint64_t>(config_.global_batch_size);
}

void SftStreamer::locate(uint64_t sample, size_t& shard, uint64_t& local) const {
  shard = std::upper_bound(starts_.begin(), starts_.end(), sample) - starts_.begin() - 1;
  local = sample - starts_[shard];
}

void SftStreamer::fill_row(const EpochPlan& plan, uint64_t row, int32_t* inputs,
                           int32_t* targets, float* weights, int32_t* segments,
                           int32_t* positions) const {
  thread_local std::vector<int32_t> tokens;
  const int64_t T = config_.seq_len;
  int64_t at = 0;
  int32_t segment = 0;
  for (uint64_t u = plan.row_start[row]; u < plan.row_start[row + 1]; ++u) {
    const uint64_t i = u / 2;
    const int d = static_cast<int>(u % 2);
    const uint64_t s = sample_at(plan.epoch, i);
    const SftShape shape = builder_->shape(sample_tokens_[s], sample_answers_[s]);
    if (d >= shape.n_documents) continue;
    size_t shard;
    uint64_t local;
    locate(s, shard, local);
    const SftShardReader& r = readers_[shard];
    r.read_tokens(local, tokens);
    const int64_t L = shape.length[d];
    MEAP_CHECK(at + L <= T, "the plan packs ", at + L, " positions into a row of ", T);
    builder_->build(tokens.data(), r.roles(local), static_cast<int64_t>(tokens.size()),
                    plan.epoch, s, d, inputs + at, targets + at, weights + at);
    for (int64_t p = 0; p < L; ++p) {
      segments[at + p] = segment;
      positions[at + p] = static_cast<int32_t>(p);
    }
    at += L;
    ++segment;
  }
  // Padding: its own segment, so no document attends to it, and weight 0.
  for (int64_t p = at; p < T; ++p) {
    inputs[p] = targets[p] = pad_id_;
    weights[p] = 0.0f;
    segments[p] = segment;
    positions[p] = static_cast<int32_t>(p - at);
  }
}

void SftStreamer::fill(SftBatch& batch, StreamerState position) const {
  const std::shared_ptr<const EpochPlan> p = plan(position.epoch);
  const int64_t T = config_.seq_len;
  batch.position = position;
  for (int64_t i = 0; i < local_batch_; ++i) {
    const uint64_t row = position.batch * config_.global_batch_size +
                         static_cast<uint64_t>(config_.rank) * local_batch_ + i;
    batch.global_row[i] = row;
    fill_row(*p, row, batch.inputs.data() + i * T, batch.targets.data() + i * T,
             batch.weights.data() + i * T, batch.segment_ids.data() + i * T,
             batch.positions.data() + i * T);
  }
}

StreamerState SftStreamer::advance(StreamerState s) const {
  if (++s.batch >= batches_in_epoch(s.epoch)) {
    s.batch = 0;
    ++s.epoch;
    if (batches_in_epoch(s.epoch) == 0)
      fail("SFT epoch ", s.epoch, " packs into fewer rows than one global batch of ",
           config_.global_batch_size);
  }
  return s;
}

const SftBatch& SftStreamer::next() { return pipeline_.next(); }

StreamerState SftStreamer::state() const { return pipeline_.state(); }

void SftStreamer::restore(StreamerState state) {
  if (state.batch >= batches_in_epoch(state.epoch))
    fail("SFT streamer position batch ", state.batch, " is past the end of epoch ", state.epoch,
         " (", batches_in_epoch(state.epoch), " batches): the checkpoint was made with other "
         "data, sft.* options or train.global_batch_size");
  pipeline_.restore(state);
}

}  // namespace meap
