// Data-parallel training with real processes under `mpirun -np 2` (CPU backend, MPI):
// 2 ranks match 1 rank (pre-training and SFT), checkpoints move between world sizes, a dead
// rank ends the job.
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "integration/io_fault_fixture.hpp"
#include "integration/sft_fixture.hpp"
#include "integration/train_fixture.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/core/error.hpp"
#include "meap/core/safetensors.hpp"
#include "meap/train/batch_source.hpp"

using namespace meap_test;

namespace {

// mpirun as root on a 2-core machine needs these (see DESIGN.md, Practicalities).
std::vector<std::string> mpirun_args(int ranks, const std::vector<std::string>& meap_args) {
  std::vector<std::string> a = {"--oversubscribe", "-np", std::to_string(ranks),
                                "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS"};
  if (std::getenv("MEAP_MPI_MAX_COUNT")) {  // the sliced-collectives test hook
    a.push_back("-x");
    a.push_back("MEAP_MPI_MAX_COUNT");
  }
  a.push_back(meap_binary());
  a.insert(a.end(), meap_args.begin(), meap_args.end());
  return a;
}

void allow_root_mpirun() {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
}

// Runs `meap ARGS` on `ranks` processes (1: plain, no mpirun) and requires exit 0.
void run_ranks(int ranks, const std::vector<std::string>& args, const fs::path& log) {
  allow_root_mpirun();
  Child child = ranks == 1 ? Child(args, log) : Child("mpirun", mpirun_args(ranks, args), log);
  REQUIRE(child.started());
  REQUIRE(child.wait(240));
  INFO(child.log());
  REQUIRE(child.exited_ok());
}

// step -> {key -> value} from metrics.jsonl (the last record of a step wins).
std::map<int64_t, nlohmann::json> metrics_by_step(const fs::path& run, const char* key) {
  std::map<int64_t, nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out[j["step"].get<int64_t>()] = j;
  }
  return out;
}

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

// Normwise relative difference of every tensor of two model.safetensors files.
double worst_weight_difference(const fs::path& a, const fs::path& b) {
  const auto fa = meap::SafetensorsFile::open(a.string());
  const auto fb = meap::SafetensorsFile::open(b.string());
  double worst = 0;
  for (const auto& info : fa.tensors()) {
    const size_t n = info.nbytes / 4;
    std::vector<float> x(n), y(n);
    fa.read(info.name, meap::DType::f32, info.shape, x.data());
    fb.read(info.name, meap::DType::f32, info.shape, y.data());
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; ++i) {
      diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      ref += double(y[i]) * y[i];
    }
    worst = std::max(worst, std::sqrt(diff / std::max(ref, 1e-300)));
  }
  return worst;
}

// Losses and weights of two runs agree to 1e-6 relative. Why not bit for bit: with 2 ranks
// the gradient is summed as (rank 0's micro-batch + rank 1's) instead of accumulated in
// one buffer micro-batch after micro-batch, a different float summation order.
void require_same_training(const fs::path& a, const fs::path& b, int64_t steps) {
  const auto la = metrics_by_step(a, "loss"), lb = metrics_by_step(b, "loss");
  for (int64_t s = 1; s <= steps; ++s) {
    INFO("step " << s);
    REQUIRE(la.count(s));
    REQUIRE(lb.count(s));
    CHECK(relative(la.at(s)["loss"].get<double>(), lb.at(s)["loss"].get<double>()) < 1e-6);
  }
  // Validation at the steps both ran it (a run stopped early validates at its last step).
  const auto va = metrics_by_step(a, "val_loss"), vb = metrics_by_step(b, "val_loss");
  int common = 0;
  for (const auto& [s, j] : va) {
    if (!vb.count(s)) continue;
    ++common;
    CHECK(relative(j["val_loss"].get<double>(), vb.at(s)["val_loss"].get<double>()) < 1e-6);
  }
  CHECK(common > 0);
  const double w = worst_weight_difference(
      fs::path(*meap::latest_checkpoint(a.string())) / "model.safetensors",
      fs::path(*meap::latest_checkpoint(b.string())) / "model.safetensors");
  std::printf("mpi: worst normwise weight difference %.3g, %zu steps compared\n", w, la.size());
  CHECK(w < 1e-6);
}

// Waits (60 s at most) until the job under `run` trains and has committed a first checkpoint
// (metrics are written before it, so waiting for them alone raced with a final check), then
// returns the pid of one of its ranks: mpirun's children on one node.
int rank_pid_after_first_checkpoint(const Child& job, const fs::path& run) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (!(fs::exists(run / "metrics.jsonl") && meap::latest_checkpoint(run.string())) &&
         SteadyClock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(fs::exists(run / "metrics.jsonl"));
  REQUIRE(meap::latest_checkpoint(run.string()));
  const std::string pgrep = "pgrep -n -P " + std::to_string(job.pid()) + " meap";
  FILE* p = ::popen(pgrep.c_str(), "r");
  REQUIRE(p != nullptr);
  int pid = 0;
  const bool read = std::fscanf(p, "%d", &pid) == 1;
  ::pclose(p);
  REQUIRE(read);
  return pid;
}

}  // namespace

TEST_CASE("mpi: 2 ranks train like 1 rank on the same global batch", "[mpi]") {
  ScratchDir d("mpi-vs-local");
  const fs::path config = write_micro_config(d.path);
  const std::vector<std::string> common = {"train", config.string(), "train.max_steps=20",
                                           "eval.interval=10", "checkpoint.interval=10"};
  auto with = [&](const std::string& out) {
    auto a = common;
    a.push_back("run.out_dir=" + out);
    return a;
  };
  run_ranks(1, with((d.path / "one").string()), d.path / "one.log");
  run_ranks(2, with((d.path / "two").string()), d.path / "two.log");
  require_same_training(d.path / "one", d.path / "two", 20);
  // Only rank 0 writes the run's files: one metrics line per step.
  CHECK(metrics_by_step(d.path / "two", "loss").size() == 20);
}

TEST_CASE("mpi: MEAP-SFT on 2 ranks trains like 1 rank: the same packed rows and masks",
          "[mpi][sft]") {
  // The SFT fixture's run (rows of 128 positions, MEAP concat) from the same pre-trained
  // micro model, for its first epoch and 4 steps into the second (a new order, fresh masks).
  // Each rank packs the epoch's rows itself and takes its half of every global batch: any
  // row or mask that differed from the single rank's would change the losses far beyond 1e-6.
  ScratchDir d("mpi-sft");
  const fs::path config = d.path / "config.yaml";
  write_text(config, micro_config_yaml(d.path / "unused"));
  std::vector<std::string> overrides = sft_overrides();
  const auto source = meap::open_batch_source(
      meap::parse_config(micro_config_yaml(d.path / "unused"), overrides, "sft"), true, 0, 1);
  const int64_t epoch0 = static_cast<int64_t>(source->batches_in_epoch(0));
  overrides.insert(overrides.end(), {"train.max_epochs=0", meap::str_cat("train.max_steps=", epoch0 + 4)});
  auto with = [&](const std::string& out) {
    std::vector<std::string> a = {"train", config.string()};
    for (const std::string& o : overrides) a.push_back(o);
    a.push_back("run.out_dir=" + out);
    return a;
  };
  run_ranks(1, with((d.path / "one").string()), d.path / "one.log");
  run_ranks(2, with((d.path / "two").string()), d.path / "two.log");
  const auto steps = metrics_by_step(d.path / "one", "loss");
  REQUIRE(static_cast<int64_t>(steps.size()) == epoch0 + 4);
  require_same_training(d.path / "one", d.path / "two", static_cast<int64_t>(steps.size()));
  CHECK(metrics_by_step(d.path / "two", "loss").size() == steps.size());
}

TEST_CASE("mpi: a checkpoint resumes on another number of ranks", "[mpi]") {
  ScratchDir d("mpi-resume");
  const fs::path config = write_micro_config(d.path);
  // Warmup covers every step, so the learning rate does not depend on train.max_steps
  // and a run stopped at max_steps=6 continues exactly as an uninterrupted one.
  const std::vector<std::string> common = {"train", config.string(), "optim.warmup_steps=20",
                                           "checkpoint.interval=3"};
  auto args = [&](const std::string& out, int steps, bool resume) {
    auto a = common;
    a.push_back("run.out_dir=" + out);
    a.push_back("train.max_steps=" + std::to_string(steps));
    if (resume) a.push_back("--resume");
    return a;
  };
  const std::string ref = (d.path / "reference").string();
  run_ranks(1, args(ref, 12, false), d.path / "ref.log");

  const std::string two_then_one = (d.path / "two-then-one").string();
  run_ranks(2, args(two_then_one, 6, false), d.path / "a1.log");
  run_ranks(1, args(two_then_one, 12, true), d.path / "a2.log");
  require_same_training(ref, two_then_one, 12);

  const std::string one_then_two = (d.path / "one-then-two").string();
  run_ranks(1, args(one_then_two, 6, false), d.path / "b1.log");
  run_ranks(2, args(one_then_two, 12, true), d.path / "b2.log");
  require_same_training(ref, one_then_two, 12);
}

TEST_CASE("mpi: a rank that dies ends the whole job with an error", "[mpi][fault]") {
  ScratchDir d("mpi-kill");
  const fs::path config = write_micro_config(d.path);
  allow_root_mpirun();
  Child job("mpirun",
            mpirun_args(2, {"train", config.string(), "dist.timeout_s=20",
                            "run.out_dir=" + (d.path / "run").string()}),
            d.path / "job.log");
  REQUIRE(job.started());
  const int victim = rank_pid_after_first_checkpoint(job, d.path / "run");
  ::kill(victim, SIGKILL);
  const auto killed_at = SteadyClock::now();
  REQUIRE(job.wait(60));
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - killed_at).count();
  INFO(job.log());
  CHECK(!job.exited_ok());
  if (std::getenv("MEAP_TEST_VERBOSE")) std::printf("%s\n", job.log().c_str());
  CHECK(seconds < 20);  // within dist.timeout_s: nobody hangs
  // The survivor names the collective it was stuck in (mpirun signals it before killing).
  // (Blocked in it when signalled, or reaching it after the signal.)
  CHECK(std::regex_search(job.log(), std::regex("rank 0: SIGTERM arrived [a-z ;]+ collective '")));
  std::printf("mpi: job ended %.2f s after a rank was killed\n", seconds);
  // What survived is a loadable checkpoint.
  REQUIRE(meap::latest_checkpoint((d.path / "run").string()));
}

// A stopped rank (SIGSTOP: a node paused, a process swapped out for good) never reaches
// the next collective; mpirun sees no exit, so only the other rank's watchdog can end the
// job: within dist.timeout_s of the stop, naming the collective.
TEST_CASE("mpi: a stopped rank ends the whole job within dist.timeout_s", "[mpi][fault]") {
  ScratchDir d("mpi-stop");
  const fs::path config = write_micro_config(d.path);
  allow_root_mpirun();
  constexpr int kTimeoutS = 8;
  Child job("mpirun",
            mpirun_args(2, {"train", config.string(), meap::str_cat("dist.timeout_s=", kTimeoutS),
                            "run.out_dir=" + (d.path / "run").string()}),
            d.path / "job.log");
  REQUIRE(job.started());
  const int victim = rank_pid_after_first_checkpoint(job, d.path / "run");
  ::kill(victim, SIGSTOP);
  const auto stopped_at = SteadyClock::now();
  const bool ended = job.wait(kTimeoutS + 30);
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - stopped_at).count();
  if (!ended) {  // the test's own cleanup: the stopped rank cannot take mpirun's SIGTERM
    ::kill(victim, SIGKILL);
    ::kill(victim, SIGCONT);
  }
  INFO(job.log());
  REQUIRE(ended);
  CHECK(!job.exited_ok());
  // The watchdog fires after dist.timeout_s; mpirun then needs a moment to tear down.
  CHECK(seconds < kTimeoutS + 10);
  CHECK(std::regex_search(job.log(), std::regex("collective '[^']+' did not complete within")));
  std::printf("mpi: job ended %.2f s after a rank was stopped (dist.timeout_s=%d)\n", seconds,
              kTimeoutS);
  REQUIRE(meap::latest_checkpoint((d.path / "run").string()));
}

// An error on one rank alone (its own log file on a full disk here; a node's local disk in
// life) must end the job at once, not when the other rank's watchdog fires: the failing rank
// leaves without MPI_Finalize, which would wait for the rank stuck in a collective.
TEST_CASE("mpi: an error on one rank alone ends the whole job at once, naming the rank and file",
          "[mpi][fault]") {
  ScratchDir d("mpi-one-rank-error");
  const fs::path config = write_micro_config(d.path);
  Tmpfs disk(d.path / "full", 16);
  MEAP_REQUIRE_TMPFS(disk);
  disk.fill();
  const fs::path run = d.path / "run";
  fs::create_directories(run / "logs");
  fs::create_symlink(disk.dir() / "rank-1.log", run / "logs" / "rank-1.log");
  allow_root_mpirun();
  constexpr int kTimeoutS = 120;  // far longer than the job may take
  const auto started = SteadyClock::now();
  Child job("mpirun",
            mpirun_args(2, {"train", config.string(), meap::str_cat("dist.timeout_s=", kTimeoutS),
                            "run.out_dir=" + run.string()}),
            d.path / "job.log");
  REQUIRE(job.started());
  const bool ended = job.wait(kTimeoutS + 30);
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  INFO(job.log());
  REQUIRE(ended);
  CHECK(!job.exited_ok());
  CHECK(seconds < 30);
  CHECK(std::regex_search(job.log(),
                          std::regex("meap train: rank 1: error: .*rank-1\\.log: No space left on device")));
  std::printf("mpi: job ended %.2f s after start when rank 1 alone failed (dist.timeout_s=%d)\n",
              seconds, kTimeoutS);
}

namespace {

// "optimizer state: N bytes per rank" from rank 0's start-up line.
int64_t optimizer_state_bytes(const fs::path& log) {
  const std::string text = slurp(log);
  std::smatch match;
  INFO(text);
  REQUIRE(std::regex_search(text, match, std::regex("optimizer state: ([0-9]+) bytes per rank")));
  return std::stoll(match[1].str());
}

}  // namespace

TEST_CASE("mpi: ZeRO-1 on 2 ranks trains like plain data parallelism and like 1 rank",
          "[mpi][zero1]") {
  ScratchDir d("mpi-zero1");
  const fs::path config = write_micro_config(d.path);
  const std::vector<std::string> common = {"train", config.string(), "train.max_steps=20",
                                           "eval.interval=10", "checkpoint.interval=10"};
  auto with = [&](const std::string& out, bool zero1) {
    auto a = common;
    a.push_back("run.out_dir=" + out);
    if (zero1) a.push_back("dist.zero1=true");
    return a;
  };
  run_ranks(1, with((d.path / "one").string(), false), d.path / "one.log");
  run_ranks(2, with((d.path / "plain").string(), false), d.path / "plain.log");
  run_ranks(2, with((d.path / "zero1").string(), true), d.path / "zero1.log");
  require_same_training(d.path / "one", d.path / "zero1", 20);
  require_same_training(d.path / "plain", d.path / "zero1", 20);
  // The same with every MPI call cut to 1000 elements: the sliced paths that shards of
  // more than 2^30 elements take (per-root MPI_Reduce / MPI_Bcast) give the same run.
  ::setenv("MEAP_MPI_MAX_COUNT", "1000", 1);
  run_ranks(2, with((d.path / "sliced").string(), true), d.path / "sliced.log");
  ::unsetenv("MEAP_MPI_MAX_COUNT");
  require_same_training(d.path / "zero1", d.path / "sliced", 20);

  // Optimizer state per rank: halved by ZeRO-1 on 2 ranks (up to the shard padding and
  // the 256-byte alignment of the two moment buffers).
  const int64_t one = optimizer_state_bytes(d.path / "one.log");
  const int64_t plain = optimizer_state_bytes(d.path / "plain.log");
  const int64_t zero1 = optimizer_state_bytes(d.path / "zero1.log");
  std::printf("mpi: optimizer state per rank: 1 rank %ld, 2 ranks %ld, 2 ranks ZeRO-1 %ld bytes\n",
              static_cast<long>(one), static_cast<long>(plain), static_cast<long>(zero1));
  CHECK(plain == one);
  CHECK(zero1 < plain);
  CHECK(std::abs(2.0 * zero1 - plain) / plain < 0.01);
  // Every rank wrote its moments shard; there is no per-tensor optim.safetensors.
  const fs::path ckpt = *meap::latest_checkpoint((d.path / "zero1").string());
  CHECK(fs::exists(ckpt / "optim-rank0-of-2.safetensors"));
  CHECK(fs::exists(ckpt / "optim-rank1-of-2.safetensors"));
  CHECK(!fs::exists(ckpt / "optim.safetensors"));
  CHECK(meap::read_checkpoint_manifest(ckpt.string()).zero1);
}

TEST_CASE("mpi: ZeRO-1 checkpoints resume on another number of ranks, with or without it",
          "[mpi][zero1]") {
  ScratchDir d("mpi-zero1-resume");
  const fs::path config = write_micro_config(d.path);
  // As in the resume test above: warmup covers every step, so a run stopped at
  // max_steps=6 continues exactly as an uninterrupted one.
  const std::vector<std::string> common = {"train", config.string(), "optim.warmup_steps=20",
                                           "checkpoint.interval=3"};
  auto args = [&](const std::string& out, int steps, bool resume, bool zero1) {
    auto a = common;
    a.push_back("run.out_dir=" + out);
    a.push_back("train.max_steps=" + std::to_string(steps));
    if (zero1) a.push_back("dist.zero1=true");
    if (resume) a.push_back("--resume");
    return a;
  };
  const std::string ref = (d.path / "reference").string();
  run_ranks(1, args(ref, 12, false, false), d.path / "ref.log");

  // 2 ranks with ZeRO-1, then 1 rank without.
  const std::string sharded_then_one = (d.path / "zero1-then-one").string();
  run_ranks(2, args(sharded_then_one, 6, false, true), d.path / "a1.log");
  const fs::path mid = *meap::latest_checkpoint(sharded_then_one);
  CHECK(fs::exists(mid / "optim-rank1-of-2.safetensors"));
  CHECK(meap::read_checkpoint_manifest(mid.string()).world_size == 2);
  run_ranks(1, args(sharded_then_one, 12, true, false), d.path / "a2.log");
  require_same_training(ref, sharded_then_one, 12);
  CHECK(fs::exists(fs::path(*meap::latest_checkpoint(sharded_then_one)) / "optim.safetensors"));

  // 1 rank without, then 2 ranks with ZeRO-1.
  const std::string one_then_sharded = (d.path / "one-then-zero1").string();
  run_ranks(1, args(one_then_sharded, 6, false, false), d.path / "b1.log");
  run_ranks(2, args(one_then_sharded, 12, true, true), d.path / "b2.log");
  require_same_training(ref, one_then_sharded, 12);
}

TEST_CASE("mpi: bucketed all-reduce during the backward gives the same training bit for bit",
          "[mpi]") {
  ScratchDir d("mpi-buckets");
  const fs::path config = write_micro_config(d.path);
  auto with = [&](const std::string& out, const char* bucket_mb) {
    return std::vector<std::string>{"train", config.string(), "train.max_steps=8",
                                    "run.out_dir=" + out, std::string("dist.bucket_mb=") + bucket_mb};
  };
  run_ranks(2, with((d.path / "whole").string(), "0"), d.path / "whole.log");
  run_ranks(2, with((d.path / "buckets").string(), "0.02"), d.path / "buckets.log");
  const std::string log = slurp(d.path / "buckets.log");
  std::smatch match;
  INFO(log);
  REQUIRE(std::regex_search(log, match, std::regex("gradient all-reduce: ([0-9]+) buckets")));
  const int buckets = std::stoi(match[1].str());
  std::printf("mpi: %d gradient buckets of 0.02 MiB per step\n", buckets);
  CHECK(buckets > 2);
  CHECK(slurp(d.path / "whole.log").find("buckets per step") == std::string::npos);
  const auto a = metrics_by_step(d.path / "whole", "loss");
  const auto b = metrics_by_step(d.path / "buckets", "loss");
  REQUIRE(a.size() == 8);
  for (const auto& [s, j] : a) CHECK(j["loss"].get<double>() == b.at(s)["loss"].get<double>());
  CHECK(worst_weight_difference(
            fs::path(*meap::latest_checkpoint((d.path / "whole").string())) / "model.safetensors",
            fs::path(*meap::latest_checkpoint((d.path / "buckets").string())) /
                "model.safetensors") == 0.0);
}

TEST_CASE("mpi: rank 0 alone speaks on the console, without colour, and every rank keeps its log",
          "[mpi]") {
  ScratchDir d("mpi-logging");
  const fs::path config = write_micro_config(d.path);
  run_ranks(2, {"train", config.string(), "train.max_steps=2"}, d.path / "job.log");
  const std::string job = slurp(d.path / "job.log");
  INFO(job);
  // mpirun hands its ranks a pseudo-terminal even though this log is a file.
  CHECK(job.find("\x1b[") == std::string::npos);
  CHECK(occurrences(job, "finished after step 2") == 1);
  CHECK(occurrences(job, "effective config") == 1);
  CHECK(occurrences(job, "optimizer state: ") == 1);
  for (const int rank : {0, 1}) {
    const std::string file =
        slurp(d.path / "run" / "logs" / ("rank-" + std::to_string(rank) + ".log"));
    INFO("rank-" << rank << ".log:\n" << file);
    CHECK(file.find("\x1b[") == std::string::npos);
    CHECK(occurrences(file, "effective config") == 1);
    CHECK(occurrences(file, "step      2/2 | loss") == 1);
  }
}
