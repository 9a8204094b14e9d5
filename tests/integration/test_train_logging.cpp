// What `meap train` writes for people to read: no colour codes in a log that is not a
// terminal, the summary once, and the rank's own file RUN_DIR/logs/rank-0.log (the 2-rank
// case runs in tests/mpi).
#include <catch2/catch.hpp>

#include "integration/train_fixture.hpp"

using namespace meap_test;

TEST_CASE("train: a piped log has no colour codes and one summary, and logs/rank-0.log keeps the run",
          "[trainer][logging]") {
  micro_corpus();
  ScratchDir d("logging");
  const fs::path config = write_micro_config(d.path);
  const fs::path rank_log = d.path / "run" / "logs" / "rank-0.log";
  const int status = run_meap({"train", config.string(), "train.max_steps=2"}, d.path / "out.log");
  const std::string out = slurp(d.path / "out.log");
  INFO(out);
  REQUIRE(describe_status(status) == "exit code 0");
  CHECK(out.find("\x1b[") == std::string::npos);
  CHECK(occurrences(out, "finished after step 2") == 1);
  CHECK(occurrences(out, "effective config") == 1);
  CHECK(occurrences(out, "checkpoint: ") == 1);

  const std::string first = slurp(rank_log);
  INFO("rank-0.log:\n" << first);
  CHECK(first.find("\x1b[") == std::string::npos);
  CHECK(occurrences(first, "effective config") == 1);
  CHECK(occurrences(first, "step      2/2 | loss") == 1);

  // A refused command appends its error to the same file: the run's history stays in one place.
  const int again = run_meap({"train", config.string(), "train.max_steps=4"}, d.path / "again.log");
  REQUIRE(describe_status(again) == "exit code 1");
  const std::string both = slurp(rank_log);
  CHECK(both.rfind(first, 0) == 0);
  CHECK(occurrences(both, "[error]") == 1);
  CHECK(occurrences(both, "already holds checkpoints") == 1);
}

TEST_CASE("train: an error comes without a dump of the config", "[trainer][logging]") {
  micro_corpus();
  ScratchDir d("logging-error");
  const fs::path config = write_micro_config(d.path);
  const int status = run_meap({"train", config.string(), "data.train=/nonexistent/train-*.bin"},
                              d.path / "out.log");
  const std::string out = slurp(d.path / "out.log");
  INFO(out);
  REQUIRE(describe_status(status) == "exit code 1");
  CHECK(out.find("/nonexistent/train-*.bin") != std::string::npos);
  CHECK(out.find("max_seq_len:") == std::string::npos);  // no YAML of the config
  CHECK(occurrences(out, "\n") <= 4);
  CHECK(!fs::exists(d.path / "run" / "config.yaml"));
}
