// Progress: "niah 120/400 (30%), 0:41 elapsed, ETA 1:35" on stderr for long evaluation
// tasks, at most every few seconds, plus a last line when done. Silent when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace meap {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled, double interval_s = 5.0);
  // Adds n finished units; prints when interval_s has passed since the last line.
  void advance(int64_t n = 1);
  // The closing line (total and elapsed time); called once.
  void finish();
  double elapsed_s() const;

 private:
  void print(bool final);
  std::string label_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace meap
