// Byte flips and truncations of every file of a checkpoint and of a run (model.safetensors,
// optim.safetensors, manifest.json, the tokenizer copy, the `latest` pointer, the run's
// config.yaml), each followed by the real `meap` command that reads that file back. The
// promise (docs/reliability.md): no damaged file is used -- the command exits 1 naming
// the file -- unless the damage provably changes nothing meap reads, a class counted apart.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "fault/fault_fixture.hpp"
#include "meap/core/error.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"

using namespace meap_fault;

namespace {

// A trained micro run (2 steps: checkpoints step-1 and step-2, keep_last 2) with a pristine
// copy; restore() puts the copy back after every trial, so trials cannot see each other.
struct TrainedRun {
  fs::path dir, config, run, pristine, ckpt;
  explicit TrainedRun(const fs::path& d) : dir(d) {
    config = write_micro_config(dir);
    run = dir / "run";
    const Ran r = run_command({"train", config.string(), "train.max_steps=2"}, dir / "train.log",
                              120);
    INFO(r.log);
    REQUIRE(r.exited(0));
    pristine = dir / "pristine";
    copy_tree(run, pristine);
    ckpt = run / "checkpoints" / "step-00000002";
    REQUIRE(fs::exists(ckpt / "manifest.json"));
  }
  void restore() const {
    copy_tree(pristine, run);
    fs::remove_all(dir / "hf");
  }
};

struct Consumer {
  std::string name;
  std::vector<std::string> args;
};

std::vector<Consumer> checkpoint_consumers(const TrainedRun& t, const std::string& target) {
  return {
      {"train --resume", {"train", t.config.string(), "--resume", "train.max_steps=3"}},
      {"generate", {"generate", target, "--prompt", "the", "--max-new-tokens", "2"}},
      {"export", {"export", target, "--out", (t.dir / "hf").string()}},
      {"eval ppl",
       {"eval", target, "--tasks", "ppl", "--text", micro_corpus().val_glob, "--max-text-tokens",
        "256", "--no-progress"}},
  };
}

bool same_json(const std::string& a, const std::string& b) {
  try {
    return nlohmann::json::parse(a) == nlohmann::json::parse(b);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

TEST_CASE("damaged checkpoint files are never used", "[fault][checkpoint]") {
  micro_corpus();
  ScratchDir d("fault-checkpoint");
  const TrainedRun t(d.path);
  std::mt19937_64 rng = seeded_rng("checkpoint files");
  const auto consumers = checkpoint_consumers(t, t.ckpt.string());
  // Which commands read which file: train --resume reads the weights, the moments and the
  // manifest, never the checkpoint's tokenizer copy (a run tokenizes with data.tokenizer,
  // checked against its shards); generate, export and eval read weights, manifest and
  // tokenizer copy, never the moments.
  struct Target {
    const char* file;
    int flips, truncations;
    std::vector<int> readers;
  };
  const Target targets[] = {
      {"model.safetensors", 48, 4, {0, 1, 2, 3}},
      {"optim.safetensors", 32, 4, {0}},
      {"tokenizer.model", 30, 3, {1, 2, 3}},
      {"manifest.json", 40, 4, {0, 1, 2, 3}},
  };
  Tally tally{"checkpoint files (model, optim, tokenizer copy, manifest)"};
  for (const Target& target : targets) {
    const fs::path path = t.ckpt / target.file;
    const std::string original = slurp(path);
    REQUIRE(!original.empty());
    for (int i = 0; i < target.flips + target.truncations; ++i) {
      const bool flipping = i < target.flips;
      const Damage damage = flipping ? flip(original, rng) : truncation(original, rng);
      const Consumer& c = consumers[target.readers[i % target.readers.size()]];
      write_text(path, damage.bytes);
      const Ran r = run_command(c.args, d.path / "trial.log", 120);
      const std::string kind = std::string(target.file) + (flipping ? " flip" : " truncation");
      const std::string detail = meap::str_cat(kind, " (", damage.what, ") under ", c.name,
                                               ": ", r.describe(), "\n", tail(r.log));
      if (clear_refusal(r, {target.file}))
        tally.ok(kind + ": refused naming the file");
      else if (r.exited(0) && std::string(target.file) == "manifest.json" &&
               same_json(original, damage.bytes))
        // The manifest's checksum is over its parsed content; a change of its layout only
        // (e.g. an exponent's 'e' to 'E') leaves every value meap reads as it was.
        tally.ok(kind + ": harmless, the same JSON values");
      else
        tally.fail(kind + ": used or unclear", detail);
      t.restore();
    }
  }
  tally.print();
  INFO(tally.failure_list());
  CHECK(tally.failures.empty());
  CHECK(tally.trials >= 160);
}

TEST_CASE("a damaged latest pointer is refused or falls back to a complete checkpoint",
          "[fault][checkpoint]") {
  micro_corpus();
  ScratchDir d("fault-latest");
  const TrainedRun t(d.path);
  std::mt19937_64 rng = seeded_rng("latest pointer");
  const fs::path pointer = t.run / "checkpoints" / "latest";
  const std::string original = slurp(pointer);  // "step-00000002\n"
  const auto consumers = checkpoint_consumers(t, t.run.string());  // the run dir: via latest
  const std::string newest = t.ckpt.string();
  const std::string older = (t.run / "checkpoints" / "step-00000001").string();
  Tally tally{"checkpoints/latest"};
  // Every byte once (random masks), then more at random places, then truncations.
  const int flips = static_cast<int>(original.size()) + 10, truncations = 4;
  for (int i = 0; i < flips + truncations; ++i) {
    const bool flipping = i < flips;
    const Damage damage =
        flipping ? flip(original, rng, i < static_cast<int>(original.size()) ? i : -1)
                 : truncation(original, rng);
    const Consumer& c = consumers[i % consumers.size()];
    write_text(pointer, damage.bytes);
    // What meap's own resolution makes of the damaged pointer, in this process.
    std::string resolved;
    try {
      resolved = meap::latest_checkpoint(t.run.string()).value_or("");
    } catch (const meap::Error&) {
      resolved = "refused";
    }
    const Ran r = run_command(c.args, d.path / "trial.log", 120);
    const std::string kind = flipping ? "latest flip" : "latest truncation";
    const std::string detail = meap::str_cat(kind, " (", damage.what, ") under ", c.name, ": ",
                                             r.describe(), "\n", tail(r.log));
    if (resolved == "refused" && clear_refusal(r, {"latest"})) {
      tally.ok(kind + ": refused naming the file");
    } else if (resolved == newest && r.exited(0)) {
      // A trailing-whitespace change names the same checkpoint; a name of no complete
      // checkpoint falls back to the newest complete one with a warning (documented).
      tally.ok(kind + (contains(r.log, "latest") ? ": fell back to the newest complete checkpoint, with a warning"
                                                 : ": harmless, names the same checkpoint"));
    } else if (resolved == older && r.exited(0)) {
      // step-00000002 -> step-00000001: an older complete, verified checkpoint -- the same
      // state a kill between a checkpoint's rename and the pointer update leaves, from
      // which a resume continues exactly (the kill trials); nothing damaged is read.
      tally.ok(kind + ": names the older complete checkpoint (as after a kill)");
    } else {
      tally.fail(kind + ": unclear", detail + "\nresolved: " + resolved);
    }
    t.restore();
  }
  tally.print();
  INFO(tally.failure_list());
  CHECK(tally.failures.empty());
  CHECK(tally.outcomes["latest flip: refused naming the file"] > 0);
}

TEST_CASE("a damaged config.yaml of a run never changes the run on --resume",
          "[fault][config]") {
  micro_corpus();
  ScratchDir d("fault-run-config");
  const TrainedRun t(d.path);
  std::mt19937_64 rng = seeded_rng("run config.yaml");
  const fs::path path = t.run / "config.yaml";
  const std::string original = slurp(path);
  const meap::Config saved = meap::parse_config(original, {}, path.string());
  const auto& safe = meap::resume_safe_config_keys();
  Tally tally{"the run's config.yaml under meap train RUN/config.yaml --resume"};
  for (int i = 0; i < 44; ++i) {
    const bool flipping = i < 40;
    const Damage damage = flipping ? flip(original, rng) : truncation(original, rng);
    write_text(path, damage.bytes);
    // What the damaged file says, read in this process as meap reads it.
    std::vector<std::string> changes;
    bool parses = true;
    try {
      changes = meap::config_schema().differences(
          saved, meap::parse_config(damage.bytes, {}, path.string()));
    } catch (const meap::Error&) {
      parses = false;
    }
    std::vector<std::string> changed_keys;
    bool only_safe = true;
    for (const std::string& c : changes) {
      changed_keys.push_back(c.substr(0, c.find(':')));
      only_safe &= std::find(safe.begin(), safe.end(), changed_keys.back()) != safe.end();
    }
    const bool out_dir_moved = std::find(changed_keys.begin(), changed_keys.end(),
                                         "run.out_dir") != changed_keys.end();
    // A changed out_dir may make the run create directories anywhere: the topmost one that
    // does not exist yet is removed after the trial.
    fs::path created;
    if (out_dir_moved) {
      fs::path p = meap::parse_config(damage.bytes, {}, path.string()).run.out_dir;
      p = fs::absolute(p);
      for (; !p.empty() && p != p.root_path() && !fs::exists(p); p = p.parent_path()) created = p;
    }
    const Ran r = run_command({"train", path.string(), "--resume", "train.max_steps=3"},
                              d.path / "trial.log", 120);
    const std::string kind = flipping ? "config.yaml flip" : "config.yaml truncation";
    const std::string detail = meap::str_cat(kind, " (", damage.what, "): ", r.describe(),
                                             "\n", tail(r.log));
    if (!parses && clear_refusal(r, {path.string()})) {
      tally.ok(kind + ": refused naming the file");
    } else if (parses && !changes.empty() && !only_safe && !out_dir_moved &&
               clear_refusal(r, changed_keys)) {
      tally.ok(kind + ": refused naming the changed key (--resume protection)");
    } else if (parses && changes.empty() && r.exited(0)) {
      tally.ok(kind + ": harmless, the same config (a comment or layout)");
    } else if (parses && only_safe && r.exited(0)) {
      tally.ok(kind + ": changed a resume-safe key (documented)");
    } else if (parses && out_dir_moved && (r.exited(0) || clear_refusal(r, changed_keys))) {
      // The file now names another run directory: that is another run (started there, or
      // refused); the run this file came from must be untouched.
      const auto latest = meap::latest_checkpoint(t.run.string());
      if (latest && meap::read_checkpoint_manifest(*latest).step == 2)
        tally.ok(kind + ": names another run.out_dir, this run untouched");
      else
        tally.fail(kind + ": another run.out_dir, but this run changed", detail);
    } else {
      tally.fail(kind + ": unclear", detail);
    }
    if (!created.empty()) fs::remove_all(created);
    t.restore();
  }
  tally.print();
  INFO(tally.failure_list());
  CHECK(tally.failures.empty());
}
