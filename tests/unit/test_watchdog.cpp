// The collective watchdog: silent while collectives finish in time, fires once, naming
// the collective, when one outlives dist.timeout_s.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "dist/watchdog.hpp"
#include "meap/dist/communicator.hpp"

using meap::CollectiveWatchdog;

TEST_CASE("watchdog fires only for a collective that outlives the timeout", "[dist]") {
  std::mutex mutex;
  std::vector<std::string> fired;
  CollectiveWatchdog dog(0.2, [&](const std::string& what) {
    std::lock_guard lock(mutex);
    fired.push_back(what);
  });
  for (int i = 0; i < 5; ++i) {  // quick collectives, back to back
    CollectiveWatchdog::Armed armed(dog, "gradient all-reduce");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // idle: nothing armed
  {
    std::lock_guard lock(mutex);
    CHECK(fired.empty());
  }
  {
    CollectiveWatchdog::Armed armed(dog, "loss all-reduce");
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
  }
  std::lock_guard lock(mutex);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0] == "loss all-reduce");
}

namespace {
// What `fn` writes to file descriptor 2.
template <class Fn>
std::string captured_stderr(Fn&& fn) {
  std::fflush(stderr);
  char path[] = "/tmp/meap_stderr_XXXXXX";
  const int fd = ::mkstemp(path);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  fn();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string text(4096, '\0');
  const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  ::close(fd);
  ::unlink(path);
  text.resize(n > 0 ? n : 0);
  return text;
}
}  // namespace

TEST_CASE("a signal during (or before) a collective names it on stderr", "[dist]") {
  CollectiveWatchdog dog(60, [](const std::string&) {});
  dog.set_rank(3);
  const std::string during = captured_stderr([&] {
    CollectiveWatchdog::Armed armed(dog, "gradient all-reduce");
    meap::report_collective_in_flight("SIGTERM");
  });
  CHECK(during.find("meap: rank 3: SIGTERM arrived while waiting in collective "
                    "'gradient all-reduce'") != std::string::npos);
  // Outside a collective nothing is printed until the next one starts, which reports once.
  const std::string before = captured_stderr([&] {
    meap::report_collective_in_flight("SIGINT");
    { CollectiveWatchdog::Armed armed(dog, "stop request"); }
    { CollectiveWatchdog::Armed armed(dog, "checkpoint barrier"); }
  });
  CHECK(before.find("rank 3: SIGINT arrived during compute; this rank now waits in collective "
                    "'stop request'") != std::string::npos);
  CHECK(before.find("checkpoint barrier") == std::string::npos);
  const std::string quiet = captured_stderr([&] { CollectiveWatchdog::Armed armed(dog, "x"); });
  CHECK(quiet.empty());
}
