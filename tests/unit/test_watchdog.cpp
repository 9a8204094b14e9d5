// The collective watchdog: silent while collectives finish in time, fires once, naming
// the collective, when one outlives dist.timeout_s.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "dist/watchdog.hpp"

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
