// Shared by the [trainer] integration tests: a tiny prepared corpus (made once per test
// process), a micro model config, and real `meap` child processes (posix_spawn) with their
// output in a log file -- so crash-safety is checked with SIGKILL / SIGTERM, not mocks.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "meap/data/prepare.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"
#include "fixtures.hpp"

extern char** environ;
extern "C" void openblas_set_num_threads(int);  // meap links OpenBLAS (BLA_VENDOR OpenBLAS)
extern "C" int openblas_get_num_threads(void);

namespace meap_test {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// One directory per test process (ctest runs test cases as parallel processes), removed at exit.
inline const fs::path& train_root() {
  static const TempDir r("meap_train_test");
  return r.path();
}

// A fresh, empty directory under the process root; removed when the object goes.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) : path(train_root() / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

struct MicroCorpus {
  std::string train_glob, val_glob, tokenizer;
  int32_t vocab_size = 0;
};

// The 24 words of the micro corpus (and of the SFT fixture's samples).
inline const char* const* micro_words() {
  static const char* words[] = {"the", "light", "of", "day", "and", "night", "water", "earth",
                                "heaven", "said", "god", "unto", "them", "was", "good", "sea",
                                "moon", "stars", "dry", "land", "herb", "seed", "tree", "fruit"};
  return words;
}
constexpr int kMicroWords = 24;

// Few distinct characters, so a 300-piece tokenizer trains quickly and covers the text.
inline std::string synthetic_text(uint32_t seed, size_t bytes) {
  const char* const* words = micro_words();
  uint32_t state = seed;
  const auto draw = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 16;
  };
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) {
    const int sentences = 1 + draw() % 6;
    for (int s = 0; s < sentences; ++s) {
      const int n = 4 + draw() % 10;
      for (int i = 0; i < n; ++i) text += (i ? " " : "") + std::string(words[draw() % 24]);
      text += draw() % 3 ? ". " : ", ";
    }
    text += "\n\n";  // a blank line ends a document
  }
  return text;
}

// Prepares a corpus of `bytes` of text with a tokenizer of `vocab_size` pieces under
// train_root()/name (once per name and process is the caller's business).
inline MicroCorpus make_corpus(const std::string& name, int32_t vocab_size, size_t bytes,
                               uint32_t seed) {
  const fs::path dir = train_root() / name;
  write_text(dir / "text" / "corpus.txt", synthetic_text(seed, bytes));
  meap::PrepareOptions o;
  o.out_dir = (dir / "data").string();
  o.inputs = {(dir / "text" / "corpus.txt").string()};
  o.vocab_size = vocab_size;
  o.val_fraction = 0.05;
  o.threads = 2;
  const meap::PrepareSummary s = meap::prepare_corpus(o);
  MicroCorpus c;
  c.train_glob = (dir / "data" / "train-*.bin").string();
  c.val_glob = (dir / "data" / "val-*.bin").string();
  c.tokenizer = s.tokenizer_path;
  c.vocab_size = s.vocab_size;
  return c;
}

// About 300 KB of text, vocab 300: roughly 90k tokens, ~340 batches of 8 x 33 per epoch.
inline const MicroCorpus& micro_corpus() {
  static const MicroCorpus c = make_corpus("corpus", 300, 300'000, 20250101u);
  return c;
}

// The micro run: dim 32, 2 layers, 2 heads (1 KV head), ffn 64, T = 32, 2 micro-batches of 4
// per step, a checkpoint and a metrics line after every step, a short warmup so the cosine
// part of the schedule is exercised. Tests change it with dotted overrides.
inline std::string micro_config_yaml(const fs::path& out_dir) {
  const MicroCorpus& c = micro_corpus();
  std::ostringstream y;
  y << "run: {name: micro, out_dir: '" << out_dir.string() << "', seed: 4321}\n"
    << "model: {vocab_size: " << c.vocab_size
    << ", dim: 32, n_layers: 2, n_heads: 2, n_kv_heads: 1, ffn_dim: 64, max_seq_len: 32}\n"
    << "data:\n"
    << "  train: '" << c.train_glob << "'\n"
    << "  val: '" << c.val_glob << "'\n"
    << "  tokenizer: '" << c.tokenizer << "'\n"
    << "  seq_len: 32\n"
    << "  meap: {mask_ratio: 0.15}\n"
    << "optim: {lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, weight_decay: 0.1, "
       "betas: [0.9, 0.95], grad_clip: 1.0}\n"
    << "train: {global_batch_size: 8, micro_batch_size: 4, max_steps: 1000000, device: cpu}\n"
    << "checkpoint: {interval: 1, keep_last: 2}\n"
    << "eval: {interval: 1000000, steps: 2}\n"
    << "log: {interval: 1}\n";
  return y.str();
}

// Writes the micro config for a run in dir/run to dir/config.yaml; returns its path.
// The micro config with its run in out_dir, parsed with the overrides.
inline meap::Config micro_config(const fs::path& out_dir, std::vector<std::string> overrides = {}) {
  return meap::parse_config(micro_config_yaml(out_dir), overrides, "micro config");
}

// meap::train's options for a test: no console output; resume when asked.
inline meap::TrainerOptions quiet(bool resume = false) {
  meap::TrainerOptions o;
  o.quiet = true;
  o.resume = resume;
  return o;
}

inline fs::path write_micro_config(const fs::path& dir) {
  const fs::path path = dir / "config.yaml";
  write_text(path, micro_config_yaml(dir / "run"));
  return path;
}

inline std::string meap_binary() { return MEAP_BINARY_DIR "/meap"; }

// The micro model gains nothing from threads, and on a busy 2-core runner (ctest -j, other
// jobs) spin-waiting OpenMP / OpenBLAS workers make each step ~20x slower. Trainer children
// therefore run single-threaded, and in-process runs use this guard.
inline std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (kv.rfind("OMP_NUM_THREADS=", 0) == 0 || kv.rfind("OPENBLAS_NUM_THREADS=", 0) == 0)
      continue;
    env.push_back(kv);
  }
  env.push_back("OMP_NUM_THREADS=1");
  env.push_back("OPENBLAS_NUM_THREADS=1");
  return env;
}

struct SingleThreaded {
  int omp = omp_get_max_threads(), blas = openblas_get_num_threads();
  SingleThreaded() {
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
  }
  ~SingleThreaded() {
    omp_set_num_threads(omp);
    openblas_set_num_threads(blas);
  }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;
};

// A `meap` child process; stdout and stderr go to `log`. Killed and reaped if still running
// when the object goes (a failed REQUIRE must not leave trainers behind).
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& log)
      : Child(meap_binary(), args, log) {}
  // Any program (e.g. mpirun), looked up on PATH when it has no slash.
  Child(const std::string& program, const std::vector<std::string>& args, const fs::path& log)
      : log_(log) {
    std::vector<std::string> argv_s = {program};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s = child_environment();
    std::vector<char*> env;
    for (std::string& e : env_s) env.push_back(e.data());
    env.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // The test runner may install handlers or block signals: the child starts clean.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    spawn_error_ = posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), env.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (spawn_error_ != 0) pid_ = -1;
  }
  ~Child() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  int spawn_error() const { return spawn_error_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !reaped_; }

  void signal(int sig) const {
    if (running()) ::kill(pid_, sig);
  }

  // Polls for the exit; true when it ended (status() then holds the wait status).
  bool try_wait() {
    if (!running()) return reaped_;
    const pid_t r = ::wait4(pid_, &status_, WNOHANG, &usage_);
    if (r == pid_) reaped_ = true;
    return reaped_;
  }

  // Waits up to timeout_s; false when it is still running then.
  bool wait(double timeout_s) {
    const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
    while (!try_wait()) {
      if (SteadyClock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  int status() const { return status_; }
  // The child's peak resident set (KiB), once it has been reaped.
  long max_rss_kb() const { return reaped_ ? usage_.ru_maxrss : 0; }
  // The child's peak resident set in bytes (its own, from wait4), once it has ended.
  uint64_t peak_rss_bytes() const { return static_cast<uint64_t>(usage_.ru_maxrss) * 1024; }
  bool exited_ok() const { return reaped_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0; }
  std::string log() const { return slurp(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int spawn_error_ = 0;
  int status_ = 0;
  struct rusage usage_ {};
  bool reaped_ = false;
};

// Runs `meap ARGS` to completion (at most timeout_s); returns the wait status, or -1 when it
// had to be killed.
inline int run_meap(const std::vector<std::string>& args, const fs::path& log,
                    double timeout_s = 60) {
  Child c(args, log);
  if (!c.started()) return -1;
  if (!c.wait(timeout_s)) return -1;
  return c.status();
}

inline std::string describe_status(int status) {
  if (status == -1) return "did not finish (or did not start)";
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// Every complete line of RUN_DIR/metrics.jsonl, parsed.
inline std::vector<nlohmann::json> read_metrics(const fs::path& run_dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The "loss" lines only (validation lines carry "val_loss").
inline std::vector<nlohmann::json> loss_lines(const fs::path& run_dir) {
  std::vector<nlohmann::json> out;
  for (auto& j : read_metrics(run_dir))
    if (j.contains("loss")) out.push_back(j);
  return out;
}

// How often needle occurs in text (a summary printed once, not once per rank).
inline size_t occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

inline size_t count_lines(const fs::path& p) {
  std::ifstream in(p);
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}

// Names in RUN_DIR/checkpoints starting with prefix (".tmp-", ".old-", "step-").
inline std::vector<std::string> checkpoint_entries(const fs::path& run_dir,
                                                   const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(run_dir / "checkpoints", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.rfind(prefix, 0) == 0) names.push_back(n);
  }
  return names;
}

}  // namespace meap_test
