// The fault suite's shared parts (ctest label `fault`, docs/reliability.md): one seeded
// generator per test, byte flips and truncations that are undone after each trial, a `meap`
// command run with a timeout and its peak memory, and the tally each test prints
// ("fault: <what>: N trials ...") -- the counts docs/reliability.md quotes.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "integration/train_fixture.hpp"
#include "meap/core/error.hpp"

namespace meap_fault {

using namespace meap_test;

// MEAP_FAULT_SEED picks another sequence of trials; the default (15, the issue) is what CI
// runs. Each test derives its own stream from it, so tests stay independent of their order.
inline uint64_t fault_seed() {
  const char* s = std::getenv("MEAP_FAULT_SEED");
  return s && *s ? std::strtoull(s, nullptr, 10) : 15;
}

inline std::mt19937_64 seeded_rng(const std::string& test) {
  std::seed_seq seq(test.begin(), test.end());
  std::mt19937_64 base(seq);
  return std::mt19937_64(base() ^ fault_seed());
}

// One finished (or killed) command.
struct Ran {
  int status = -1;
  bool started = false;
  bool timed_out = false;
  long max_rss_kb = 0;
  double seconds = 0;
  std::string log;

  bool exited(int code) const {
    return started && !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == code;
  }
  bool signalled() const { return started && !timed_out && WIFSIGNALED(status); }
  std::string describe() const {
    if (!started) return "did not start";
    if (timed_out) return "timed out (killed)";
    return describe_status(status);
  }
};

// Runs PROGRAM (meap when empty) with ARGS, stdout and stderr into LOG; killed with SIGKILL
// after timeout_s.
inline Ran run_command(const std::vector<std::string>& args, const fs::path& log,
                       double timeout_s, const std::string& program = "") {
  Ran r;
  const auto t0 = SteadyClock::now();
  Child c(program.empty() ? meap_binary() : program, args, log);
  r.started = c.started();
  if (!r.started) return r;
  if (!c.wait(timeout_s)) {
    r.timed_out = true;
    c.signal(SIGKILL);
    c.wait(30);
  }
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  r.status = c.status();
  r.max_rss_kb = c.max_rss_kb();
  r.log = c.log();
  return r;
}

// What a flip or truncation did to a file, for the messages.
struct Damage {
  std::string what;   // "flip 0x10 at byte 1234 of 5678" / "truncated to 12 of 5678 bytes"
  std::string bytes;  // the damaged content
};

// Byte `at` XORed with a non-zero mask, both drawn from rng unless given.
inline Damage flip(const std::string& data, std::mt19937_64& rng, int64_t at = -1) {
  if (at < 0) at = static_cast<int64_t>(rng() % data.size());
  const auto mask = static_cast<unsigned char>(1 + rng() % 255);
  Damage d{meap::str_cat("byte ", at, " of ", data.size(), " XOR 0x", std::hex,
                         static_cast<int>(mask)),
           data};
  d.bytes[at] = static_cast<char>(static_cast<unsigned char>(d.bytes[at]) ^ mask);
  return d;
}

// The first n bytes, n drawn from [0, size).
inline Damage truncation(const std::string& data, std::mt19937_64& rng) {
  const size_t n = rng() % data.size();
  return Damage{meap::str_cat("truncated to ", n, " of ", data.size(), " bytes"),
                data.substr(0, n)};
}

// Counts per outcome class; `failures` holds every trial that broke a promise, with enough
// to reproduce it. print() writes the line docs/reliability.md quotes.
struct Tally {
  std::string name;
  std::map<std::string, int> outcomes;
  std::vector<std::string> failures;
  int trials = 0;

  void ok(const std::string& outcome) {
    ++trials;
    ++outcomes[outcome];
  }
  void fail(const std::string& outcome, const std::string& detail) {
    ++trials;
    ++outcomes["FAILED: " + outcome];
    failures.push_back(outcome + ": " + detail);
  }
  void print() const {
    std::printf("fault: %s: %d trials (MEAP_FAULT_SEED=%llu)\n", name.c_str(), trials,
                static_cast<unsigned long long>(fault_seed()));
    for (const auto& [k, n] : outcomes) std::printf("  %5d  %s\n", n, k.c_str());
    std::fflush(stdout);
  }
  std::string failure_list(size_t at_most = 20) const {
    std::string s;
    for (size_t i = 0; i < failures.size() && i < at_most; ++i) s += failures[i] + "\n";
    return s;
  }
};

// The last lines of a log, for failure messages.
inline std::string tail(const std::string& log, size_t chars = 600) {
  return log.size() <= chars ? log : "..." + log.substr(log.size() - chars);
}

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// A sanitizer's report in a log (the build-asan run: scripts/test.sh): always a failure,
// even where the process went on to exit as a refusal would.
inline bool sanitizer_report(const std::string& log) {
  return contains(log, "Sanitizer") || contains(log, "runtime error:");
}

// A command's refusal is clear when it exits 1 (meap's "error:"; 3 is "internal error",
// a signal is a crash) and names one of `names`.
inline bool clear_refusal(const Ran& r, const std::vector<std::string>& names) {
  if (!r.exited(1) || contains(r.log, "internal error") || sanitizer_report(r.log)) return false;
  for (const std::string& n : names)
    if (contains(r.log, n)) return true;
  return false;
}

inline void copy_tree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

}  // namespace meap_fault
