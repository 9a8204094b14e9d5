// What the token and the SFT streamers share: the checks on the batch geometry, the glob of
// shard files, and the prefetch pipeline -- a background thread that fills batches ahead of
// the caller in a ring of slots and can be rewound to any position (a checkpoint's).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace meap {

// Refuses seq_len <= 0, a rank outside the world, a global batch that is not a positive
// multiple of the world size, and prefetch < 0 (naming the config keys); returns the local
// batch size, global_batch_size / world_size.
int64_t check_batch_geometry(int64_t seq_len, int64_t global_batch_size, int rank,
                             int world_size, int prefetch);

// The files matching `pattern`, sorted; refuses an empty match with "no KIND shards match
// 'PATTERN' (HINT)".
std::vector<std::string> expand_shard_glob(const std::string& pattern, const char* kind,
                                           const char* hint);

// Batch: any struct with a `position` member (the streamer's position type) that fill()
// sets. Slot i is filled by the worker while the caller holds another; next() hands out the
// slots in the order of their positions.
template <class Batch>
class PrefetchPipeline {
 public:
  using Position = decltype(Batch::position);
  using Fill = std::function<void(Batch&, Position)>;  // may throw; runs on the worker
  using Advance = std::function<Position(Position)>;   // the position after a batch

  PrefetchPipeline(Fill fill, Advance advance)
      : fill_(std::move(fill)), advance_(std::move(advance)) {}
  ~PrefetchPipeline() { stop_worker(); }
  PrefetchPipeline(const PrefetchPipeline&) = delete;
  PrefetchPipeline& operator=(const PrefetchPipeline&) = delete;

  // depth batches prepared ahead (0: next() fills on the caller's thread), each slot a copy
  // of `shape` (its arrays sized). Then restore() starts the pipeline.
  void set_slots(int depth, const Batch& shape) {
    stop_worker();
    depth_ = depth;
    slots_.assign(depth + 1, shape);
  }

  // The next batch, valid until the next call to next() or restore(); rethrows the error
  // of the worker.
  const Batch& next() {
    if (depth_ == 0) {
      fill_(slots_[0], consume_at_);
      consume_at_ = advance_(consume_at_);
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
    consume_at_ = advance_(slots_[in_use_].position);
    return slots_[in_use_];
  }

  // The position of the batch next() returns next.
  Position state() const {
    std::lock_guard lock(mutex_);
    return consume_at_;
  }

  // Drops every prepared batch and continues from `position` (checked by the caller).
  void restore(Position position) {
    stop_worker();
    ready_.clear();
    free_.clear();
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) free_.push_back(i);
    in_use_ = -1;
    worker_error_ = nullptr;
    produce_at_ = consume_at_ = position;
    if (depth_ > 0) {
      stopping_ = false;
      worker_ = std::thread([this] { work(); });
    }
  }

 private:
  void stop_worker() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  void work() {
    for (;;) {
      int slot;
      Position position;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !free_.empty(); });
        if (stopping_) return;
        slot = free_.front();
        free_.pop_front();
        position = produce_at_;
      }
      try {
        const Position after = advance_(position);
        fill_(slots_[slot], position);
        std::lock_guard lock(mutex_);
        produce_at_ = after;
        ready_.push_back(slot);
        cv_.notify_all();
      } catch (...) {
        std::lock_guard lock(mutex_);
        worker_error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
    }
  }

  Fill fill_;
  Advance advance_;
  int depth_ = 0;
  std::vector<Batch> slots_;
  std::deque<int> ready_, free_;  // slot indices: filled in position order / to fill
  int in_use_ = -1;               // the slot the caller holds from the last next()
  Position produce_at_{}, consume_at_{};
  std::exception_ptr worker_error_;
  bool stopping_ = false;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::thread worker_;
};

}  // namespace meap
