// CollectiveWatchdog: arms a deadline around each blocking collective. A background thread
// ends the process (via the given abort function) when a collective outlives the
// deadline -- MPI offers no timeout of its own, and a dead peer would hang us forever.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace meap {

class CollectiveWatchdog {
 public:
  CollectiveWatchdog(double timeout_s, std::function<void(const std::string&)> on_timeout);
  ~CollectiveWatchdog();

  // The rank named by report_collective_in_flight() (communicator.hpp).
  void set_rank(int rank);

  // Scope guard: the collective named `what` is in flight while it lives.
  class Armed {
   public:
    Armed(CollectiveWatchdog& w, const char* what);
    ~Armed();

   private:
    CollectiveWatchdog& w_;
  };

 private:
  void loop();

  double timeout_s_;
  std::function<void(const std::string&)> on_timeout_;
  std::mutex mutex_;
  std::condition_variable cv_;
  const char* what_ = nullptr;  // the collective in flight, or null
  std::chrono::steady_clock::time_point deadline_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meap
