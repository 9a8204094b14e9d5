// kill -9 at seeded random moments of a training run, then `--resume` to the end: the
// result must equal an uninterrupted run bit for bit -- weights, AdamW moments, the data
// position and every step's logged loss. (The kills aimed at each stage of a checkpoint
// write are tests/integration/test_train_signals.cpp's, also in the fault label.)
#include <catch2/catch.hpp>

#include "fault/fault_fixture.hpp"
#include "meap/train/checkpoint.hpp"

using namespace meap_fault;

namespace {

constexpr int kSteps = 8;

// step -> the loss it logged last (a step re-run after a kill logs again; the resumed run's
// line is the one that counts).
std::map<int64_t, double> losses(const fs::path& run) {
  std::map<int64_t, double> out;
  for (const auto& j : loss_lines(run)) out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
  return out;
}

struct Final {
  std::string weights, moments;
  meap::CheckpointManifest manifest;
  std::map<int64_t, double> losses;
};

Final final_state(const fs::path& run) {
  const auto latest = meap::latest_checkpoint(run.string());
  REQUIRE(latest);
  return {slurp(*latest + "/model.safetensors"), slurp(*latest + "/optim.safetensors"),
          meap::read_checkpoint_manifest(*latest), losses(run)};
}

// Where the kill landed, from what it left on disk.
std::string landed(const fs::path& run) {
  if (!checkpoint_entries(run, ".tmp-").empty()) return "inside a checkpoint write";
  const auto latest = meap::latest_checkpoint(run.string());
  if (!latest) return "before the first checkpoint";
  return "between checkpoints";
}

}  // namespace

TEST_CASE("kill -9 at random moments, then --resume, equals an uninterrupted run",
          "[fault][signals]") {
  micro_corpus();
  std::mt19937_64 rng = seeded_rng("kill -9");
  const std::string steps = meap::str_cat("train.max_steps=", kSteps);

  ScratchDir ref("fault-kill-reference");
  const fs::path ref_config = write_micro_config(ref.path);
  const Ran whole = run_command({"train", ref_config.string(), steps}, ref.path / "train.log", 120);
  INFO(whole.log);
  REQUIRE(whole.exited(0));
  const Final expected = final_state(ref.path / "run");
  REQUIRE(expected.manifest.step == kSteps);
  REQUIRE(expected.losses.size() == static_cast<size_t>(kSteps));

  Tally tally{"kill -9 at random moments of meap train, then --resume"};
  int kills = 0;
  for (int trial = 0; kills < 12 && trial < 40; ++trial) {
    ScratchDir d(meap::str_cat("fault-kill-", trial));
    const fs::path config = write_micro_config(d.path);
    const fs::path run = d.path / "run";
    // A moment within the uninterrupted run's duration (start-up included).
    const double delay = std::uniform_real_distribution<double>(0.0, whole.seconds)(rng);
    std::string where;
    {
      Child c({"train", config.string(), steps}, d.path / "killed.log");
      REQUIRE(c.started());
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      if (c.try_wait()) continue;  // finished first: no kill, not a trial
      c.signal(SIGKILL);
      REQUIRE(c.wait(30));
      if (!WIFSIGNALED(c.status())) continue;  // it finished between the check and the kill
      ++kills;
      where = landed(run);
    }
    const Ran resumed =
        run_command({"train", config.string(), "--resume", steps}, d.path / "resume.log", 120);
    const std::string detail =
        meap::str_cat("kill after ", delay, " s (", where, "); resume: ", resumed.describe(),
                      "\n", tail(resumed.log));
    if (!resumed.exited(0)) {
      tally.fail("resume failed", detail);
      continue;
    }
    const Final got = final_state(run);
    if (got.manifest.step == kSteps && got.weights == expected.weights &&
        got.moments == expected.moments && got.losses == expected.losses &&
        got.manifest.tokens_seen == expected.manifest.tokens_seen &&
        got.manifest.streamer.epoch == expected.manifest.streamer.epoch &&
        got.manifest.streamer.batch == expected.manifest.streamer.batch &&
        got.manifest.train_loss == expected.manifest.train_loss)
      tally.ok("killed " + where + ": resumed bit-identical");
    else
      tally.fail("killed " + where + ": resumed run differs", detail);
  }
  tally.print();
  INFO(tally.failure_list());
  CHECK(kills >= 10);
  CHECK(tally.failures.empty());
}
