// `meap train` on a disk that fills up or turns read-only (a tmpfs of a few KiB, mounted for
// the test): the run stops with an error naming the file and the errno text, every record
// already in metrics.jsonl is whole, the last good checkpoint stays `latest` with no partial
// checkpoint left behind, and --resume continues once there is space again.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <optional>
#include <thread>

#include "integration/io_fault_fixture.hpp"
#include "meap/core/system_memory.hpp"

using namespace meap_test;

namespace {

// Waits (up to timeout_s) until RUN_DIR/checkpoints/latest names at least `step`.
bool wait_for_checkpoint(const fs::path& run_dir, int64_t step, Child& child, double timeout_s) {
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  while (latest_step(run_dir) < step) {
    if (child.try_wait() || SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

TEST_CASE("train: a full disk mid-run stops it naming the file, whole records, the last "
          "checkpoint kept, --resume continues once there is space",
          "[fault][io][trainer]") {
  micro_corpus();
  ScratchDir d("disk-full-train");
  Tmpfs disk(d.path / "disk", 4096);
  MEAP_REQUIRE_TMPFS(disk);
  const fs::path run = disk.dir() / "run";
  const fs::path config = d.path / "config.yaml";
  write_text(config, micro_config_yaml(run));

  Child trainer({"train", config.string(), "checkpoint.interval=5", "log.tensorboard=true"},
                d.path / "train.log");
  REQUIRE(trainer.started());
  REQUIRE(wait_for_checkpoint(run, 5, trainer, 120));
  const uint64_t filled = disk.fill();
  INFO("filled " << filled << " bytes");
  REQUIRE(trainer.wait(120));
  const std::string out = trainer.log();
  INFO(out);
  CHECK(describe_status(trainer.status()) == "exit code 1");
  CHECK(out.find("No space left on device") != std::string::npos);
  CHECK(out.find(run.string()) != std::string::npos);  // the message names the file
  CHECK(out.find("internal error") == std::string::npos);
  CHECK(out.find("Input/output error") == std::string::npos);

  std::string why;
  CHECK(whole_json_lines(run / "metrics.jsonl", &why));
  INFO(why);
  const std::vector<int64_t> steps = metric_steps(run);
  REQUIRE(!steps.empty());
  for (size_t i = 0; i < steps.size(); ++i) CHECK(steps[i] == static_cast<int64_t>(i) + 1);
  CHECK(checkpoint_entries(run, ".tmp-").empty());  // the failed checkpoint was removed
  const int64_t kept = latest_step(run);
  CHECK(kept >= 5);
  char kept_name[32];
  std::snprintf(kept_name, sizeof kept_name, "step-%08lld", static_cast<long long>(kept));
  CHECK(fs::exists(run / "checkpoints" / kept_name / "manifest.json"));

  // Space again: the run continues from the kept checkpoint to three steps past its last record.
  disk.unfill();
  const int64_t target = steps.back() + 3;
  const int resumed = run_meap({"train", config.string(), "--resume", "checkpoint.interval=5",
                                "log.tensorboard=true", "train.max_steps=" + std::to_string(target)},
                               d.path / "resume.log", 120);
  INFO(slurp(d.path / "resume.log"));
  REQUIRE(describe_status(resumed) == "exit code 0");
  CHECK(whole_json_lines(run / "metrics.jsonl", &why));
  CHECK(metric_steps(run).back() == target);
  CHECK(latest_step(run) == target);
}

TEST_CASE("train: a run directory turned read-only mid-run stops it at the next checkpoint "
          "naming it (EROFS), the last checkpoint kept, --resume continues once writable",
          "[fault][io][trainer]") {
  micro_corpus();
  ScratchDir d("read-only-mid-run");
  const fs::path run = d.path / "run";
  const fs::path config = d.path / "config.yaml";
  write_text(config, micro_config_yaml(run));
  fs::create_directories(run);

  Child trainer({"train", config.string(), "checkpoint.interval=5"}, d.path / "train.log");
  REQUIRE(trainer.started());
  REQUIRE(wait_for_checkpoint(run, 5, trainer, 120));
  ReadOnlyBind read_only(run);
  if (!read_only.read_only()) {
    trainer.signal(SIGTERM);  // it would train on: max_steps is 1e6
    trainer.wait(60);
    WARN("SKIPPED: cannot bind-mount " << run.string() << " read-only; the test needs root");
    return;
  }
  REQUIRE(trainer.wait(120));
  const std::string out = trainer.log();
  INFO(out);
  CHECK(describe_status(trainer.status()) == "exit code 1");
  CHECK(out.find("Read-only file system") != std::string::npos);
  CHECK(out.find(run.string()) != std::string::npos);  // the message names the file
  CHECK(out.find("internal error") == std::string::npos);
  read_only.release();

  std::string why;
  CHECK(whole_json_lines(run / "metrics.jsonl", &why));
  INFO(why);
  CHECK(checkpoint_entries(run, ".tmp-").empty());
  const int64_t kept = latest_step(run);
  CHECK(kept >= 5);
  const int64_t target = metric_steps(run).back() + 3;
  const int resumed = run_meap({"train", config.string(), "--resume", "checkpoint.interval=5",
                                "train.max_steps=" + std::to_string(target)},
                               d.path / "resume.log", 120);
  INFO(slurp(d.path / "resume.log"));
  REQUIRE(describe_status(resumed) == "exit code 0");
  CHECK(metric_steps(run).back() == target);
  CHECK(latest_step(run) == target);
}

TEST_CASE("train: metrics.jsonl on a full disk fails at the write that does not fit, naming "
          "it, with no half line",
          "[fault][io][trainer]") {
  micro_corpus();
  ScratchDir d("disk-full-metrics");
  // metrics.jsonl alone lives on a tmpfs of two pages; the rest of the run on the normal disk,
  // so the metrics write is the one that meets the full disk (no checkpoint is due).
  Tmpfs disk(d.path / "disk", 8);
  MEAP_REQUIRE_TMPFS(disk);
  const fs::path run = d.path / "run";
  fs::create_directories(run);
  FileBind bind(disk.dir() / "metrics.jsonl", run / "metrics.jsonl");
  REQUIRE(bind.mounted());
  const fs::path config = write_micro_config(d.path);

  const int status = run_meap({"train", config.string(), "checkpoint.interval=100000"},
                              d.path / "train.log", 120);
  const std::string out = slurp(d.path / "train.log");
  INFO(out);
  CHECK(describe_status(status) == "exit code 1");
  CHECK(out.find("cannot write '" + (run / "metrics.jsonl").string() +
                 "': No space left on device") != std::string::npos);
  CHECK(out.find("(the latest checkpoint is (none yet))") != std::string::npos);
  const std::string text = slurp(run / "metrics.jsonl");
  // It failed only once the two pages were full (no earlier, no silent later), and kept
  // whole lines: the line that did not fit was cut off, not left half-written.
  CHECK(text.size() <= 8192);
  CHECK(text.size() > 8192 - 400);
  std::string why;
  CHECK(whole_json_lines(run / "metrics.jsonl", &why));
  INFO(why);
  const std::vector<int64_t> steps = metric_steps(run);
  REQUIRE(!steps.empty());
  for (size_t i = 0; i < steps.size(); ++i) CHECK(steps[i] == static_cast<int64_t>(i) + 1);
}

TEST_CASE("train: a rank log on a full disk stops the run naming the log file",
          "[fault][io][trainer]") {
  micro_corpus();
  ScratchDir d("disk-full-log");
  const fs::path run = d.path / "run";
  Tmpfs disk(run / "logs", 8);
  MEAP_REQUIRE_TMPFS(disk);
  const fs::path config = write_micro_config(d.path);
  const int status = run_meap({"train", config.string(), "checkpoint.interval=100000"},
                              d.path / "train.log", 120);
  const std::string out = slurp(d.path / "train.log");
  INFO(out);
  CHECK(describe_status(status) == "exit code 1");
  CHECK(out.find((run / "logs" / "rank-0.log").string()) != std::string::npos);
  CHECK(out.find("No space left on device") != std::string::npos);
  CHECK(out.find("training stopped") != std::string::npos);
  std::string why;
  CHECK(whole_json_lines(run / "metrics.jsonl", &why));
}

TEST_CASE("train: a read-only run directory is refused naming it (EROFS), the run resumes "
          "once it is writable",
          "[fault][io][trainer]") {
  micro_corpus();
  ScratchDir d("read-only-train");
  Tmpfs disk(d.path / "disk", 8192);
  MEAP_REQUIRE_TMPFS(disk);
  const fs::path run = disk.dir() / "run";
  const fs::path config = d.path / "config.yaml";
  write_text(config, micro_config_yaml(run));
  REQUIRE(describe_status(run_meap({"train", config.string(), "train.max_steps=3"},
                                   d.path / "first.log", 120)) == "exit code 0");
  const std::string before = slurp(run / "metrics.jsonl");

  REQUIRE(disk.set_read_only(true));
  const int refused = run_meap({"train", config.string(), "--resume", "train.max_steps=6"},
                               d.path / "ro.log", 120);
  const std::string out = slurp(d.path / "ro.log");
  INFO(out);
  CHECK(describe_status(refused) == "exit code 1");
  CHECK(out.find("Read-only file system") != std::string::npos);
  CHECK(out.find(run.string()) != std::string::npos);
  CHECK(out.find("internal error") == std::string::npos);
  CHECK(slurp(run / "metrics.jsonl") == before);
  CHECK(latest_step(run) == 3);

  REQUIRE(disk.set_read_only(false));
  const int resumed = run_meap({"train", config.string(), "--resume", "train.max_steps=6"},
                               d.path / "rw.log", 120);
  INFO(slurp(d.path / "rw.log"));
  CHECK(describe_status(resumed) == "exit code 0");
  CHECK(metric_steps(run) == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("train: a model that cannot fit in host memory is refused before anything is "
          "allocated, naming the keys",
          "[fault][memory][trainer]") {
  micro_corpus();
  ScratchDir d("memory-refusal");
  const fs::path config = write_micro_config(d.path);
  const std::optional<uint64_t> available = meap::available_host_memory();
  if (!available) {
    WARN("SKIPPED: /proc/meminfo has no MemAvailable here");
    return;
  }
  // A model needing about twice the memory available now (fp32 weights, gradients and two
  // AdamW moments: 16 bytes per parameter; dim 4096 with ffn 16384 is about 268M parameters,
  // 4.3 GB, per layer) -- more than there is, whatever the machine, yet a valid config.
  const double per_layer_bytes = 16.0 * (4.0 * 4096 * 4096 + 3.0 * 4096 * 16384);
  const int64_t layers = std::max<int64_t>(
      1, static_cast<int64_t>(2.0 * static_cast<double>(*available) / per_layer_bytes) + 1);
  const std::vector<std::string> big = {"model.dim=4096", "model.n_heads=32",
                                        "model.n_kv_heads=32", "model.ffn_dim=16384",
                                        "model.n_layers=" + std::to_string(layers)};
  if (layers > 65536) {
    WARN("SKIPPED: " << *available << " bytes available: more than a valid config can ask for");
    return;
  }
  std::vector<std::string> args = {"train", config.string()};
  args.insert(args.end(), big.begin(), big.end());
  Child trainer(args, d.path / "train.log");
  REQUIRE(trainer.wait(120));
  const std::string out = trainer.log();
  INFO(out);
  CHECK(describe_status(trainer.status()) == "exit code 1");
  CHECK(out.find("the model and micro-batch need") != std::string::npos);
  CHECK(out.find("is available") != std::string::npos);
  CHECK(out.find("model.n_layers=" + std::to_string(layers)) != std::string::npos);
  CHECK(out.find("bad_alloc") == std::string::npos);
  // Refused before the model was allocated: the process never grew past a small fraction
  // of the model (the corpus, the tokenizer and the code: well under 1 GB).
  CHECK(trainer.peak_rss_bytes() < (uint64_t{1} << 30));
  CHECK(!fs::exists(d.path / "run" / "config.yaml"));

  // meap inspect says the same, with the breakdown, and allocates nothing either.
  args[0] = "inspect";
  Child inspect(args, d.path / "inspect.log");
  REQUIRE(inspect.wait(60));
  INFO(inspect.log());
  CHECK(describe_status(inspect.status()) == "exit code 0");
  CHECK(inspect.log().find("this run does NOT fit (meap train refuses it)") != std::string::npos);
  CHECK(inspect.peak_rss_bytes() < (uint64_t{1} << 30));
}
