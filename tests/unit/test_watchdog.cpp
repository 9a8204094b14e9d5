// The collective watchdog: silent while collectives finish in time, fires once, naming
// the collective, when one outlives dist.timeout_s.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "dist/watchdog.hpp"
#include "meap/core/log.hpp"
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

TEST_CASE("a collective past its timeout ends the process, said in this rank's log file",
          "[dist]") {
  const std::string dir = "/tmp/meap_watchdog_log-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // as a rank of mpirun: the console takes warnings, the file everything
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 2);
    meap::setup_logging(1, true);
    meap::log_to_rank_file(dir);
    spdlog::info("step 7");
    meap::abort_on_collective_timeout(1, "gradient all-reduce", 60);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::ifstream in(dir + "/rank-1.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(log);
  CHECK(log.find("[info] step 7") != std::string::npos);
  CHECK(log.find("[critical] rank 1: collective 'gradient all-reduce' did not complete within "
                 "60 s (dist.timeout_s)") != std::string::npos);
  std::filesystem::remove_all(dir);
}
