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

// Scope guard: marks the collective `what` (a string literal) as the one this process is
// blocked in, for report_collective_in_flight() (communicator.hpp) -- every blocking wait
// of every communicator holds one. Reports a signal that arrived before it started.
class CollectiveInFlight {
 public:
  explicit CollectiveInFlight(const char* what);
  ~CollectiveInFlight();
  CollectiveInFlight(const CollectiveInFlight&) = delete;
  CollectiveInFlight& operator=(const CollectiveInFlight&) = delete;
};

// The answer to a collective that outlived dist.timeout_s where it cannot be cancelled: logs
// which one (the console and this rank's log file, core/log.hpp) and ends the process.
[[noreturn]] void abort_on_collective_timeout(int rank, const std::string& what, double timeout_s);

class CollectiveWatchdog {
 public:
  CollectiveWatchdog(double timeout_s, std::function<void(const std::string&)> on_timeout);
  ~CollectiveWatchdog();

  // The rank named by report_collective_in_flight() (communicator.hpp); process-wide.
  static void set_rank(int rank);

  // Scope guard: the collective named `what` is in flight while it lives.
  class Armed {
   public:
    Armed(CollectiveWatchdog& w, const char* what);
    ~Armed();

   private:
    CollectiveInFlight in_flight_;
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
