// `meap prepare`, `meap export` and `meap import` on a full or read-only disk (a small tmpfs
// mounted for the test), and the temporary directories of export and import: removed when
// the command is stopped by SIGINT or SIGTERM, and swept by the next export or import to the
// same place when kill -9 left one behind.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <thread>

#include "integration/io_fault_fixture.hpp"

using namespace meap_test;

namespace {

// Entries of `dir` whose name starts with `prefix`.
std::vector<std::string> entries_with_prefix(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.rfind(prefix, 0) == 0) names.push_back(n);
  }
  return names;
}

// A plain-text corpus of about 300 KB in DIR/corpus.txt.
fs::path write_corpus(const fs::path& dir) {
  const fs::path p = dir / "corpus.txt";
  write_text(p, synthetic_text(99u, 300'000));
  return p;
}

// Runs `meap ARGS`; returns {status, output}.
std::pair<std::string, std::string> meap_run(const std::vector<std::string>& args,
                                             const fs::path& log, double timeout_s = 120) {
  const int status = run_meap(args, log, timeout_s);
  return {describe_status(status), slurp(log)};
}

// A step-0 checkpoint of the micro model (meap init) in DIR/ck, with `overrides`.
fs::path init_checkpoint(const fs::path& dir, const std::vector<std::string>& overrides,
                         const std::string& name = "ck") {
  const fs::path config = write_micro_config(dir);
  std::vector<std::string> args = {"init", config.string(), "--out", (dir / name).string()};
  args.insert(args.end(), overrides.begin(), overrides.end());
  const auto [status, out] = meap_run(args, dir / (name + "-init.log"));
  INFO(out);
  REQUIRE(status == "exit code 0");
  return dir / name;
}

}  // namespace

TEST_CASE("prepare: a full disk is reported as such, naming the file, and leaves no shards",
          "[fault][io][prepare]") {
  const MicroCorpus& corpus = micro_corpus();
  ScratchDir d("disk-full-prepare");
  const fs::path text = write_corpus(d.path);

  SECTION("copying the tokenizer") {
    Tmpfs disk(d.path / "disk", 256);
    MEAP_REQUIRE_TMPFS(disk);
    disk.fill();
    const fs::path out = disk.dir() / "data";
    const auto [status, log] = meap_run(
        {"prepare", "--out", out.string(), "--tokenizer", corpus.tokenizer, text.string()},
        d.path / "prepare.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find("tokenizer.model.tmp': No space left on device") != std::string::npos);
    CHECK(log.find(out.string()) != std::string::npos);
    CHECK(log.find("Input/output error") == std::string::npos);
    CHECK(!fs::exists(out / "prepare.json"));
    CHECK(entries_with_prefix(out, "train-").empty());
  }
  SECTION("writing the shards") {
    // Room for the tokenizer, not for ~90k tokens of shards.
    Tmpfs disk(d.path / "disk", 64);
    MEAP_REQUIRE_TMPFS(disk);
    const fs::path out = disk.dir() / "data";
    const auto [status, log] = meap_run(
        {"prepare", "--out", out.string(), "--tokenizer", corpus.tokenizer, "--threads", "2",
         text.string()},
        d.path / "prepare.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find(".bin.tmp': No space left on device") != std::string::npos);
    CHECK(log.find(out.string()) != std::string::npos);
    CHECK(!fs::exists(out / "prepare.json"));
    CHECK(entries_with_prefix(out, "train-").empty());  // committed shards removed too
    CHECK(entries_with_prefix(out, "val-").empty());
  }
  SECTION("writing the tokenizer's training text") {
    Tmpfs disk(d.path / "disk", 256);
    MEAP_REQUIRE_TMPFS(disk);
    const fs::path out = disk.dir() / "data";
    fs::create_directories(out);
    disk.fill();
    const auto [status, log] = meap_run(
        {"prepare", "--out", out.string(), "--vocab-size", "300", text.string()},
        d.path / "prepare.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find(".tokenizer-train.txt': No space left on device") != std::string::npos);
    CHECK(!fs::exists(out / "prepare.json"));
    CHECK(!fs::exists(out / ".tokenizer-train.txt"));
  }
  SECTION("a read-only output directory") {
    Tmpfs disk(d.path / "disk", 256);
    MEAP_REQUIRE_TMPFS(disk);
    fs::create_directories(disk.dir() / "data");
    REQUIRE(disk.set_read_only(true));
    const fs::path out = disk.dir() / "data";
    const auto [status, log] = meap_run(
        {"prepare", "--out", out.string(), "--tokenizer", corpus.tokenizer, text.string()},
        d.path / "prepare.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find("Read-only file system") != std::string::npos);
    CHECK(log.find(out.string()) != std::string::npos);
    CHECK(log.find("internal error") == std::string::npos);
  }
}

TEST_CASE("export and import: a full or read-only disk is reported as such, naming the file, "
          "and leaves nothing behind",
          "[fault][io][export]") {
  micro_corpus();
  ScratchDir d("disk-full-export");
  const fs::path ck = init_checkpoint(d.path, {});

  SECTION("export on a full disk") {
    Tmpfs disk(d.path / "disk", 64);  // the weights (~150 KB) do not fit
    MEAP_REQUIRE_TMPFS(disk);
    const fs::path out = disk.dir() / "hf";
    const auto [status, log] =
        meap_run({"export", ck.string(), "--out", out.string()}, d.path / "export.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find("No space left on device") != std::string::npos);
    CHECK(log.find(out.string() + ".tmp-") != std::string::npos);
    CHECK(!fs::exists(out));
    CHECK(entries_with_prefix(disk.dir(), "hf.tmp-").empty());
  }
  SECTION("export to a read-only disk") {
    Tmpfs disk(d.path / "disk", 1024);
    MEAP_REQUIRE_TMPFS(disk);
    REQUIRE(disk.set_read_only(true));
    const fs::path out = disk.dir() / "hf";
    const auto [status, log] =
        meap_run({"export", ck.string(), "--out", out.string()}, d.path / "export.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find("Read-only file system") != std::string::npos);
    CHECK(log.find(out.string()) != std::string::npos);
  }
  SECTION("import on a full disk") {
    const fs::path hf = d.path / "hf";
    REQUIRE(meap_run({"export", ck.string(), "--out", hf.string()}, d.path / "export.log").first ==
            "exit code 0");
    Tmpfs disk(d.path / "disk", 64);
    MEAP_REQUIRE_TMPFS(disk);
    const fs::path out = disk.dir() / "imported";
    const auto [status, log] =
        meap_run({"import", hf.string(), "--out", out.string()}, d.path / "import.log");
    INFO(log);
    CHECK(status == "exit code 1");
    CHECK(log.find("No space left on device") != std::string::npos);
    CHECK(log.find(out.string() + ".tmp-") != std::string::npos);
    CHECK(!fs::exists(out));
    CHECK(entries_with_prefix(disk.dir(), "imported.tmp-").empty());
  }
}

namespace {

// Starts `meap export CK --out OUT` and sends `sig` as soon as OUT.tmp-PID exists. Returns
// the child's wait status, or -1 when it finished before the signal could land (export done).
int export_and_signal(const fs::path& ck, const fs::path& out, int sig, const fs::path& log) {
  Child c({"export", ck.string(), "--out", out.string()}, log);
  if (!c.started()) return -1;
  const fs::path staging = out.string() + ".tmp-" + std::to_string(c.pid());
  for (;;) {
    if (::access(staging.c_str(), F_OK) == 0) {
      c.signal(sig);
      break;
    }
    if (c.try_wait()) return -1;
  }
  if (!c.wait(60)) return -1;
  return c.status();
}

}  // namespace

TEST_CASE("export: SIGINT or SIGTERM removes DIR.tmp-PID, one left by kill -9 is swept by the "
          "next export or import to the same place",
          "[fault][io][export][signals]") {
  micro_corpus();
  ScratchDir d("export-signals");
  // Big enough (about 27M parameters, 108 MB of fp32 weights) that the signal lands while
  // the weights are being written.
  const fs::path ck = init_checkpoint(
      d.path, {"model.dim=512", "model.n_heads=8", "model.n_kv_heads=8", "model.ffn_dim=1536",
               "model.n_layers=8"});
  const fs::path out = d.path / "hf";

  for (const int sig : {SIGINT, SIGTERM}) {
    INFO("signal " << sig);
    int landed = 0;
    for (int attempt = 0; attempt < 10 && landed == 0; ++attempt) {
      const int status = export_and_signal(ck, out, sig, d.path / "export.log");
      if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fs::remove_all(out);  // finished first: try again
        continue;
      }
      INFO(slurp(d.path / "export.log"));
      // The process ends as the signal says, after removing its temporary directory.
      CHECK(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == sig);
      ++landed;
    }
    REQUIRE(landed == 1);
    CHECK(entries_with_prefix(d.path, "hf.tmp-").empty());
    CHECK(!fs::exists(out));
  }

  // kill -9 cannot be caught: its DIR.tmp-PID stays until the next export to DIR.
  std::string stale;
  for (int attempt = 0; attempt < 10 && stale.empty(); ++attempt) {
    const int status = export_and_signal(ck, out, SIGKILL, d.path / "export.log");
    const auto left = entries_with_prefix(d.path, "hf.tmp-");
    if (status != -1 && WIFSIGNALED(status) && !left.empty()) stale = left.front();
    fs::remove_all(out);
  }
  REQUIRE(!stale.empty());
  const auto [status, log] =
      meap_run({"export", ck.string(), "--out", out.string()}, d.path / "again.log");
  INFO(log);
  REQUIRE(status == "exit code 0");
  CHECK(log.find("removed the stale temporary directory " + (d.path / stale).string()) !=
        std::string::npos);
  CHECK(entries_with_prefix(d.path, "hf.tmp-").empty());
  CHECK(fs::exists(out / "config.json"));

  // import: a stale OUT.tmp-PID of a process that is gone is removed; one of a live process
  // (this test's) is left alone.
  pid_t dead = 0;
  {
    Child gone({"--version"}, d.path / "version.log");
    REQUIRE(gone.wait(30));
    dead = gone.pid();
  }
  const fs::path imported = d.path / "imported";
  const fs::path dead_dir = imported.string() + ".tmp-" + std::to_string(dead);
  const fs::path live_dir = imported.string() + ".tmp-" + std::to_string(::getpid());
  write_text(dead_dir / "model.safetensors.tmp", "partial");
  write_text(live_dir / "model.safetensors.tmp", "in use");
  const auto [istatus, ilog] =
      meap_run({"import", out.string(), "--out", imported.string()}, d.path / "import.log");
  INFO(ilog);
  REQUIRE(istatus == "exit code 0");
  CHECK(!fs::exists(dead_dir));
  CHECK(ilog.find("removed the stale temporary directory " + dead_dir.string()) !=
        std::string::npos);
  CHECK(fs::exists(live_dir));
  CHECK(fs::exists(imported / "manifest.json"));
}
