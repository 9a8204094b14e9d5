#include "watchdog.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "meap/dist/communicator.hpp"

namespace meap {

namespace {
// What report_collective_in_flight() reads from a signal handler: lock-free atomics only.
// `what` strings are the callers' literals, alive for the whole run.
std::atomic<const char*> g_in_flight{nullptr};
std::atomic<int> g_rank{-1};
// The signal that arrived while no collective was in flight, not yet reported: the next
// collective to start reports it (a rank computing when mpirun signals it blocks there).
std::atomic<const char*> g_unreported_signal{nullptr};
static_assert(std::atomic<const char*>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

void write_str(const char* s) {
  const ssize_t ignored = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)ignored;
}
}  // namespace

namespace {
// "meap: rank R: SIGNAL arrived <when> collective 'WHAT'; ..." with write(2) only.
void write_report(const char* signal_name, const char* when, const char* what) {
  write_str("meap: ");
  const int r = g_rank.load();
  if (r >= 0) {
    char digits[16], rank[16];
    int n = 0;
    for (int x = r; n == 0 || x > 0; x /= 10) digits[n++] = static_cast<char>('0' + x % 10);
    for (int i = 0; i < n; ++i) rank[i] = digits[n - 1 - i];
    rank[n] = '\0';
    write_str("rank ");
    write_str(rank);
    write_str(": ");
  }
  write_str(signal_name);
  write_str(when);
  write_str(what);
  write_str("'; if a peer rank failed (mpirun then stops the job), that collective is the one "
            "that could not complete\n");
}
}  // namespace

void report_collective_in_flight(const char* signal_name) {
  const char* what = g_in_flight.load();
  if (!what) {
    g_unreported_signal.store(signal_name);
    return;
  }
  write_report(signal_name, " arrived while waiting in collective '", what);
}

CollectiveInFlight::CollectiveInFlight(const char* what) {
  g_in_flight.store(what);
  if (const char* sig = g_unreported_signal.exchange(nullptr))
    write_report(sig, " arrived during compute; this rank now waits in collective '", what);
}

CollectiveInFlight::~CollectiveInFlight() { g_in_flight.store(nullptr); }

void abort_on_collective_timeout(int rank, const std::string& what, double timeout_s) {
  spdlog::critical("rank {}: collective '{}' did not complete within {:.0f} s (dist.timeout_s): "
                   "another rank died or hangs; aborting",
                   rank, what, timeout_s);
  spdlog::default_logger()->flush();
  std::_Exit(1);
}

void CollectiveWatchdog::set_rank(int rank) { g_rank.store(rank); }

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

CollectiveWatchdog::Armed::Armed(CollectiveWatchdog& w, const char* what)
    : in_flight_(what), w_(w) {
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
