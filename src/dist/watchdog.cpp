#include "watchdog.hpp"

namespace meap {

CollectiveWatchdog::CollectiveWatchdog(double timeout_s,
                                       std::function<void(const std::string&)> on_timeout)
    : timeout_s_(timeout_s), on_timeout_(std::move(on_timeout)), thread_([this] { loop(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

CollectiveWatchdog::Armed::Armed(CollectiveWatchdog& w, const char* what) : w_(w) {
  std::lock_guard lock(w_.mutex_);
  w_.what_ = what;
  w_.deadline_ = std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                     std::chrono::duration<double>(w_.timeout_s_));
  w_.cv_.notify_all();
}

CollectiveWatchdog::Armed::~Armed() {
  std::lock_guard lock(w_.mutex_);
  w_.what_ = nullptr;
  w_.cv_.notify_all();
}

void CollectiveWatchdog::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!what_) {
      cv_.wait(lock);
      continue;
    }
    const auto deadline = deadline_;
    const char* what = what_;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && what_ == what &&
        deadline_ == deadline) {
      what_ = nullptr;  // fire once (the communicator's handler ends the process)
      lock.unlock();
      on_timeout_(std::string(what));
      lock.lock();
    }
  }
}

}  // namespace meap
