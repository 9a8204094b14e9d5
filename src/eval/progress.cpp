// Progress lines with an ETA from the mean time per unit so far.
#include "meap/eval/progress.hpp"

#include <cstdio>

#include "meap/core/human_format.hpp"

namespace meap {

Progress::Progress(std::string label, int64_t total, bool enabled, double interval_s)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_).count() >= interval_s_ && done_ < total_) {
    last_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final) {
  if (!enabled_) return;
  const double elapsed = elapsed_s();
  if (final) {
    std::fprintf(stderr, "meap eval: %s %ld/%ld done in %s\n", label_.c_str(),
                 static_cast<long>(done_), static_cast<long>(total_),
                 human_duration(elapsed).c_str());
  } else {
    const double eta = done_ > 0 ? elapsed / static_cast<double>(done_) *
                                       static_cast<double>(total_ - done_)
                                 : 0.0;
    std::fprintf(stderr, "meap eval: %s %ld/%ld (%.0f%%), %s elapsed, ETA %s\n", label_.c_str(),
                 static_cast<long>(done_), static_cast<long>(total_),
                 total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_)
                            : 100.0,
                 human_duration(elapsed).c_str(), human_duration(eta).c_str());
  }
  std::fflush(stderr);
}

}  // namespace meap
