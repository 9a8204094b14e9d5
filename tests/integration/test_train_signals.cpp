// Crash safety of `meap train` with real processes (DESIGN.md invariants 2 and 3): SIGKILL
// at many moments, most of them while a checkpoint directory is being written, always
// leaves a loadable checkpoint that `--resume` continues from exactly; SIGTERM stops
// cleanly with a checkpoint of the last step; a run directory with checkpoints is not
// silently restarted. (kill -9 at random moments with a bit-identical comparison to an
// uninterrupted run: tests/fault/test_kill_resume.cpp.)
#include <catch2/catch.hpp>

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "meap/backend/arena.hpp"
#include "meap/backend/backend.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/model/llama.hpp"
#include "train_fixture.hpp"

using namespace meap_test;

namespace {

constexpr int64_t kTokensPerStep = 8 * 32;  // global batch x seq_len of the micro config

// "step-00000042" for 42, as the checkpoint writer names them.
std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// Step number of a `.tmp-step-XXXXXXXX` name, -1 for anything else.
int64_t tmp_step(const char* name) {
  static const char prefix[] = ".tmp-step-";
  if (std::strncmp(name, prefix, sizeof prefix - 1) != 0) return -1;
  return std::atoll(name + sizeof prefix - 1);
}

// Spins (no sleep: a checkpoint of the micro model takes a few milliseconds) until a
// `.tmp-step-N` directory with N > after_step shows up in dir; returns N, or -1 on timeout or
// when the child is gone.
int64_t wait_for_tmp_dir(const fs::path& dir, int64_t after_step, Child& child,
                         double timeout_s) {
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  for (uint64_t spins = 0;; ++spins) {
    if (DIR* d = ::opendir(dir.c_str())) {
      int64_t found = -1;
      while (const dirent* e = ::readdir(d)) found = std::max(found, tmp_step(e->d_name));
      ::closedir(d);
      if (found > after_step) return found;
    }
    if (spins % 256 == 0 && (SteadyClock::now() > deadline || child.try_wait())) return -1;
  }
}

// The step RUN_DIR/checkpoints/latest names, -1 when it names none.
int64_t latest_pointer_step(const fs::path& ckdir) {
  std::ifstream in(ckdir / "latest");
  std::string name;
  if (!(in >> name) || name.rfind("step-", 0) != 0) return -1;
  return std::atoll(name.c_str() + 5);
}

bool exists_now(const fs::path& p) { return ::access(p.c_str(), F_OK) == 0; }

// A moment inside save_checkpoint of step N, recognised by what it leaves on disk.
enum class Moment { TmpCreated, File, Renamed, LatestTmp, LatestMoved };
struct KillPoint {
  const char* what;
  Moment moment;
  const char* file = "";  // for Moment::File: appears inside .tmp-step-N
};

// Spins until `p` is reached in the checkpoint of step n (true), or that checkpoint has been
// completed without it being seen (false: the kill then lands a little later).
bool wait_for_moment(const fs::path& ckdir, int64_t n, const KillPoint& p, Child& child) {
  const fs::path tmp = ckdir / (".tmp-" + step_name(n));
  const fs::path final_manifest = ckdir / step_name(n) / "manifest.json";
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  for (uint64_t spins = 0;; ++spins) {
    switch (p.moment) {
      case Moment::TmpCreated: return true;
      case Moment::File:
        if (exists_now(tmp / p.file)) return true;
        break;
      case Moment::Renamed:
        if (exists_now(final_manifest)) return true;
        break;
      case Moment::LatestTmp:
        if (exists_now(ckdir / "latest.tmp")) return true;
        break;
      case Moment::LatestMoved:
        if (latest_pointer_step(ckdir) >= n) return true;
        break;
    }
    if (p.moment != Moment::LatestMoved && latest_pointer_step(ckdir) >= n) return false;
    if (spins % 256 == 0 && (SteadyClock::now() > deadline || child.try_wait())) return false;
  }
}

// Polls until the run has a complete checkpoint; false on timeout or when the child is gone.
bool wait_for_checkpoint(const fs::path& run, Child& child, double timeout_s) {
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  while (!meap::latest_checkpoint(run.string())) {
    if (SteadyClock::now() > deadline || child.try_wait()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// What SIGKILL left: the files of each .tmp dir, .old dirs, the step dirs, the latest pointer.
std::string leftover_phase(const fs::path& run) {
  std::string out;
  for (const std::string& t : checkpoint_entries(run, ".tmp-")) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(run / "checkpoints" / t))
      files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    out += (out.empty() ? "" : "; ") + t + ":[";
    for (size_t i = 0; i < files.size(); ++i) out += (i ? "," : "") + files[i];
    out += "]";
  }
  for (const std::string& o : checkpoint_entries(run, ".old-")) out += " " + o;
  std::vector<std::string> steps = checkpoint_entries(run, "step-");
  std::sort(steps.begin(), steps.end());
  std::string dirs;
  for (const std::string& d : steps) dirs += (dirs.empty() ? "" : ",") + d.substr(5);
  return meap::str_cat(out.empty() ? "no temporaries" : out, " | step dirs ", dirs, ", latest ",
                       latest_pointer_step(run / "checkpoints"));
}

// The checkpoint loads the way the trainer loads it: weights into a Llama of the run's shape,
// moments into flat buffers of the trainer's size. Returns the manifest.
meap::CheckpointManifest check_loadable(const std::string& ckpt) {
  const meap::CheckpointManifest man = meap::read_checkpoint_manifest(ckpt);
  const meap::Config cfg = meap::parse_config(man.config_yaml, {}, ckpt + "/manifest.json");
  auto backend = meap::make_backend(meap::DeviceChoice::cpu);
  meap::Llama model(cfg.model, *backend, cfg.train.micro_batch_size, cfg.data.seq_len);
  const int64_t n_flat = model.flat_parameters().numel();
  meap::Arena moments(*backend,
                      2 * meap::arena_aligned(n_flat * meap::dtype_size(model.dtype())));
  const meap::Tensor m = moments.take(model.dtype(), {n_flat});
  const meap::Tensor v = moments.take(model.dtype(), {n_flat});
  REQUIRE_NOTHROW(meap::load_checkpoint_tensors(ckpt, model, m, v));
  // Over the named tensors only: the alignment padding between them is never written.
  double w2 = 0, v2 = 0;
  for (const meap::NamedParameter& p : model.parameters()) {
    meap::Tensor pv = p.value;
    pv.data = static_cast<char*>(v.data) + p.offset * meap::dtype_size(v.dtype);
    w2 += backend->sum_squares(p.value);
    v2 += backend->sum_squares(pv);
  }
  CHECK(std::isfinite(w2));
  CHECK(w2 > 0);
  CHECK(std::isfinite(v2));
  CHECK(v2 > 0);  // at least one AdamW update is in the moments
  return man;
}

// step-* directories holding a manifest.json: what latest_checkpoint considers complete.
std::vector<std::string> complete_checkpoints(const fs::path& run) {
  std::vector<std::string> out;
  for (const std::string& d : checkpoint_entries(run, "step-"))
    if (fs::exists(run / "checkpoints" / d / "manifest.json")) out.push_back(d);
  return out;
}

// The last "loss" line a run logged for `step`, if any.
std::optional<nlohmann::json> logged_step(const std::vector<nlohmann::json>& lines,
                                          int64_t step) {
  std::optional<nlohmann::json> found;
  for (const auto& j : lines)
    if (j.contains("loss") && j.at("step").get<int64_t>() == step) found = j;
  return found;
}

// One trial: start a long run, let `kill_when` decide the moment, SIGKILL, then check what is
// left and resume it for two steps. Returns what the kill left behind (for the summary).
template <class KillWhen>
std::string kill_and_resume(const std::string& name, KillWhen kill_when) {
  ScratchDir d(name);
  const fs::path config = write_micro_config(d.path);
  const fs::path run = d.path / "run";
  std::string left;
  {
    Child c({"train", config.string()}, d.path / "train.log");
    REQUIRE(c.started());
    if (!wait_for_checkpoint(run, c, 60)) FAIL("no checkpoint appeared; log:\n" << c.log());
    kill_when(c, run);
    c.signal(SIGKILL);
    REQUIRE(c.wait(30));
    INFO("trainer log:\n" << c.log());
    REQUIRE(WIFSIGNALED(c.status()));
    REQUIRE(WTERMSIG(c.status()) == SIGKILL);
  }
  left = leftover_phase(run);
  INFO(name << ": the kill left " << left);

  // The previous checkpoint is complete and loadable, and at most one step is lost.
  const std::optional<std::string> latest = meap::latest_checkpoint(run.string());
  REQUIRE(latest);
  const meap::CheckpointManifest man = check_loadable(*latest);
  const int64_t s = man.step;
  REQUIRE(s >= 1);
  CHECK(*latest == (run / "checkpoints" / step_name(s)).string());
  CHECK(man.tokens_seen == static_cast<uint64_t>(s * kTokensPerStep));
  const std::vector<nlohmann::json> before = read_metrics(run);
  REQUIRE(!before.empty());
  const int64_t last_logged = before.back().at("step").get<int64_t>();
  CHECK(s <= last_logged);
  CHECK(s >= last_logged - 1);  // a checkpoint per step: the kill costs at most one step
  const std::optional<nlohmann::json> killed_run_line = logged_step(before, s + 1);

  // Stale leftovers of other crashes must not confuse the resume.
  const fs::path ckdir = run / "checkpoints";
  write_text(ckdir / (".old-" + step_name(s)) / "model.safetensors", "junk");
  write_text(ckdir / (".old-" + step_name(s + 1)) / "model.safetensors", "junk");
  write_text(ckdir / (".tmp-" + step_name(s + 7)) / "model.safetensors", "half written");
  write_text(ckdir / "latest.tmp", "step-99999999\n");
  write_text(ckdir / "manifest.json.tmp", "{");

  const fs::path resume_log = d.path / "resume.log";
  const int status = run_meap({"train", config.string(), "--resume",
                               meap::str_cat("train.max_steps=", s + 2)},
                              resume_log);
  INFO("resume log:\n" << slurp(resume_log));
  REQUIRE(describe_status(status) == "exit code 0");
  CHECK(slurp(resume_log).find("resumed from") != std::string::npos);

  // metrics.jsonl gains exactly the next two steps, and the first of them repeats the killed
  // run's loss bit for bit when that run had logged it (exact resume).
  const std::vector<nlohmann::json> after = read_metrics(run);
  REQUIRE(after.size() >= before.size());
  std::vector<int64_t> new_steps;
  for (size_t i = before.size(); i < after.size(); ++i)
    if (after[i].contains("loss")) new_steps.push_back(after[i].at("step").get<int64_t>());
  CHECK(new_steps == std::vector<int64_t>{s + 1, s + 2});
  if (killed_run_line) {
    const std::vector<nlohmann::json> resumed(after.begin() + static_cast<long>(before.size()),
                                              after.end());
    const std::optional<nlohmann::json> line = logged_step(resumed, s + 1);
    REQUIRE(line);
    CHECK(line->at("loss").get<double>() == killed_run_line->at("loss").get<double>());
    CHECK(line->at("grad_norm").get<double>() == killed_run_line->at("grad_norm").get<double>());
  }

  const std::optional<std::string> now = meap::latest_checkpoint(run.string());
  REQUIRE(now);
  CHECK(check_loadable(*now).step == s + 2);
  // keep_last = 2 complete checkpoints, and no half-removed ones.
  CHECK(complete_checkpoints(run).size() <= 2);
  return left;
}

}  // namespace

TEST_CASE("train: SIGKILL while a checkpoint is written leaves a loadable one to resume from",
          "[trainer][signals][fault]") {
  micro_corpus();
  // Every stage of save_checkpoint, in order: the kill lands right when the stage's trace
  // shows up on disk (a few microseconds later).
  const KillPoint points[] = {
      {"temporary directory created", Moment::TmpCreated},
      {"model weights being written", Moment::File, "model.safetensors.tmp"},
      {"model weights renamed", Moment::File, "model.safetensors"},
      {"moments being written", Moment::File, "optim.safetensors.tmp"},
      {"moments renamed", Moment::File, "optim.safetensors"},
      {"tokenizer copied", Moment::File, "tokenizer.model"},
      {"manifest being written", Moment::File, "manifest.json.tmp"},
      {"manifest renamed", Moment::File, "manifest.json"},
      {"directory renamed, latest not yet moved", Moment::Renamed},
      {"latest being rewritten", Moment::LatestTmp},
      {"latest moved, pruning", Moment::LatestMoved},
  };
  int hit_mid_write = 0, trial = 0, seen = 0;
  std::string report;
  for (const KillPoint& p : points) {
    INFO("kill point: " << p.what);
    bool reached = false;
    const std::string left = kill_and_resume(
        meap::str_cat("kill-ckpt-", trial++), [&](Child& c, const fs::path& run) {
          const int64_t done =
              meap::read_checkpoint_manifest(*meap::latest_checkpoint(run.string())).step;
          // A few steps in, so the kill also meets pruning and a full keep_last.
          const int64_t n = wait_for_tmp_dir(run / "checkpoints", done + 1, c, 30);
          REQUIRE(n > 0);
          reached = wait_for_moment(run / "checkpoints", n, p, c);
        });
    seen += reached;
    hit_mid_write += left.find(".tmp-step-") != std::string::npos;
    report += meap::str_cat("  ", p.what, reached ? "" : " (missed)", " -> left ", left, "\n");
  }
  INFO("what the kills left:\n" << report);
  // The polling must have caught the writer inside the checkpoint at least sometimes, or the
  // test proves nothing about crashes mid-write.
  CHECK(hit_mid_write >= 1);
  CHECK(seen >= 1);
  if (std::getenv("MEAP_TEST_VERBOSE"))
    std::fprintf(stderr, "SIGKILL during checkpoint: %d of %d stages caught, %d mid-write:\n%s",
                 seen, trial, hit_mid_write, report.c_str());
}

TEST_CASE("train: SIGTERM finishes the step, checkpoints it and exits 0", "[trainer][signals]") {
  micro_corpus();
  ScratchDir d("sigterm");
  const fs::path config = write_micro_config(d.path);
  const fs::path run = d.path / "run";
  Child c({"train", config.string()}, d.path / "train.log");
  REQUIRE(c.started());
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (count_lines(run / "metrics.jsonl") < 2) {
    if (c.try_wait() || SteadyClock::now() > deadline)
      FAIL("the trainer logged no 2 steps; log:\n" << c.log());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto sent = SteadyClock::now();
  c.signal(SIGTERM);
  REQUIRE(c.wait(30));
  const double stop_s = std::chrono::duration<double>(SteadyClock::now() - sent).count();
  const std::string log = c.log();
  INFO("trainer log:\n" << log);
  REQUIRE(describe_status(c.status()) == "exit code 0");
  CHECK(stop_s < 5);  // one step and one checkpoint, not the remaining 10^6 steps

  const std::vector<nlohmann::json> lines = loss_lines(run);
  REQUIRE(lines.size() >= 2);
  const int64_t last = lines.back().at("step").get<int64_t>();
  CHECK(last < 1000000);
  CHECK(log.find(meap::str_cat("stopped after step ", last)) != std::string::npos);
  const std::optional<std::string> latest = meap::latest_checkpoint(run.string());
  REQUIRE(latest);
  const meap::CheckpointManifest man = check_loadable(*latest);
  CHECK(man.step == last);
  CHECK(man.train_loss == lines.back().at("loss").get<double>());
  // A clean stop leaves a tidy directory: no temporaries, keep_last respected.
  CHECK(checkpoint_entries(run, ".tmp-").empty());
  CHECK(checkpoint_entries(run, ".old-").empty());
  CHECK(checkpoint_entries(run, "step-").size() <= 2);
}

TEST_CASE("train: a run directory with checkpoints is not restarted without --resume",
          "[trainer][signals]") {
  micro_corpus();
  ScratchDir d("refuse");
  const fs::path config = write_micro_config(d.path);
  const fs::path run = d.path / "run";
  const int first = run_meap({"train", config.string(), "train.max_steps=2"}, d.path / "first.log");
  INFO("first run:\n" << slurp(d.path / "first.log"));
  REQUIRE(describe_status(first) == "exit code 0");
  const std::string metrics_before = slurp(run / "metrics.jsonl");
  const std::string latest_before = *meap::latest_checkpoint(run.string());

  const int again = run_meap({"train", config.string(), "train.max_steps=4"}, d.path / "again.log");
  const std::string log = slurp(d.path / "again.log");
  INFO("second run:\n" << log);
  REQUIRE(WIFEXITED(again));
  CHECK(WEXITSTATUS(again) != 0);
  CHECK(log.find("--resume") != std::string::npos);
  CHECK(log.find("already holds checkpoints") != std::string::npos);
  // Nothing of the existing run was touched.
  CHECK(slurp(run / "metrics.jsonl") == metrics_before);
  CHECK(*meap::latest_checkpoint(run.string()) == latest_before);
  CHECK(meap::read_checkpoint_manifest(latest_before).step == 2);

  // With --resume the same command continues it.
  const int resumed = run_meap({"train", config.string(), "train.max_steps=4", "--resume"},
                               d.path / "resume.log");
  INFO("resumed run:\n" << slurp(d.path / "resume.log"));
  REQUIRE(describe_status(resumed) == "exit code 0");
  CHECK(meap::read_checkpoint_manifest(*meap::latest_checkpoint(run.string())).step == 4);
}

// A refused command (here: no --resume on a run with checkpoints) must not replace the
// saved config.yaml of the run that wrote those checkpoints.
TEST_CASE("train: a refused run leaves the run's saved config.yaml alone", "[trainer]") {
  micro_corpus();
  ScratchDir d("refuse-config");
  const fs::path config = write_micro_config(d.path);
  const fs::path run = d.path / "run";
  REQUIRE(describe_status(run_meap({"train", config.string(), "train.max_steps=1"},
                                   d.path / "first.log")) == "exit code 0");
  const std::string saved = slurp(run / "config.yaml");
  REQUIRE(saved.find("lr: 0.01") != std::string::npos);
  const int again = run_meap({"train", config.string(), "optim.lr=0.5"}, d.path / "again.log");
  REQUIRE(WIFEXITED(again));
  REQUIRE(WEXITSTATUS(again) != 0);
  CHECK(slurp(run / "config.yaml") == saved);
}

// A SIGKILL inside the removal of an old checkpoint can leave a step-N without its
// manifest (made here by hand, as such a kill leaves it); the next save must sweep it, so
// keep_last keeps bounding the directory.
TEST_CASE("train: a checkpoint half-removed by a kill during pruning is cleaned up later",
          "[trainer]") {
  micro_corpus();
  ScratchDir d("half-pruned");
  const fs::path config = write_micro_config(d.path);
  const fs::path run = d.path / "run";
  REQUIRE(describe_status(run_meap({"train", config.string(), "train.max_steps=3"},
                                   d.path / "first.log")) == "exit code 0");
  // keep_last = 2: step 2 and 3 are left. Step 2 as a kill inside its remove_all leaves it.
  const fs::path victim = run / "checkpoints" / step_name(2);
  REQUIRE(fs::exists(victim / "manifest.json"));
  fs::remove(victim / "manifest.json");
  fs::remove(victim / "tokenizer.model");
  REQUIRE(describe_status(run_meap({"train", config.string(), "--resume", "train.max_steps=6"},
                                   d.path / "resume.log")) == "exit code 0");
  CHECK(meap::read_checkpoint_manifest(*meap::latest_checkpoint(run.string())).step == 6);
  CHECK_FALSE(fs::exists(victim));
  CHECK(checkpoint_entries(run, "step-").size() <= 2);
}
