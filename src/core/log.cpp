// The default logger: a console sink (every rank; below warn only on rank 0) and, once a
// run directory is known, a file sink per rank.
#include "meap/core/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

#include <spdlog/sinks/ansicolor_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "meap/core/error.hpp"

namespace meap {

namespace {

struct LogState {
  int rank = 0;
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  std::string file_path;
};

// Written by spdlog's error handler (any thread that logs), read by the trainer.
struct WriteError {
  std::mutex mu;
  std::optional<std::string> first;
};

WriteError& write_error() {
  static WriteError e;
  return e;
}

void on_log_error(const std::string& message) {
  WriteError& e = write_error();
  std::lock_guard<std::mutex> lock(e.mu);
  if (e.first) return;
  e.first = message;
  std::fprintf(stderr, "meap: error: the log file cannot be written: %s\n", message.c_str());
}

LogState& state() {
  static LogState s;
  return s;
}

bool colour_wanted(bool launched) {
  const char* no_color = std::getenv("NO_COLOR");
  return !launched && ::isatty(STDERR_FILENO) == 1 && !(no_color && *no_color);
}

}  // namespace

void setup_logging(int rank, bool launched) {
  auto console = std::make_shared<spdlog::sinks::ansicolor_stderr_sink_mt>(
      colour_wanted(launched) ? spdlog::color_mode::automatic : spdlog::color_mode::never);
  // Rank 0 speaks for the job; another rank's line on the console is a problem of its own.
  console->set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
  console->set_pattern(rank == 0 ? "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v"
                                 : "[%Y-%m-%d %H:%M:%S.%e] [rank " + std::to_string(rank) +
                                       "] [%^%l%$] %v");
  auto logger = std::make_shared<spdlog::logger>("meap", console);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);  // a killed run's file keeps every line it logged
  logger->set_error_handler(on_log_error);
  spdlog::set_default_logger(logger);
  state() = LogState{rank, nullptr, ""};
}

std::string log_to_rank_file(const std::string& dir) {
  LogState& s = state();
  if (s.file) return s.file_path;  // one run per process
  const std::string path =
      (std::filesystem::path(dir) / ("rank-" + std::to_string(s.rank) + ".log")).string();
  try {
    std::filesystem::create_directories(dir);
    s.file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const std::exception& e) {  // filesystem_error, spdlog_ex
    fail("cannot open the log file ", path, ": ", e.what());
  }
  s.file_path = path;
  s.file->set_level(spdlog::level::info);
  s.file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  spdlog::default_logger()->sinks().push_back(s.file);
  return s.file_path;
}

void log_error_to_file(const std::string& message) {
  LogState& s = state();
  if (!s.file) return;
  try {
    s.file->log(spdlog::details::log_msg("meap", spdlog::level::err, message));
    s.file->flush();
  } catch (const std::exception&) {
    // The console has the message; the file is what failed (a full disk).
  }
}

std::optional<std::string> log_file_write_error() {
  WriteError& e = write_error();
  std::lock_guard<std::mutex> lock(e.mu);
  return e.first;
}

}  // namespace meap
