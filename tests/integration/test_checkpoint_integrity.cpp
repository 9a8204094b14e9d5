// Nothing corrupt is trained on or exported, and a resume trains the run on disk: byte
// flips in every checkpoint file are refused naming the file (resume, init_from, generate,
// export), a damaged `latest` or step directory gets a clear error instead of a fresh
// start over the run, a resume that would change the run is refused with the changes
// unless --allow-config-change, which records them.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>

#include "meap/core/safetensors.hpp"
#include "meap/train/checkpoint.hpp"
#include "train_fixture.hpp"

using Catch::Matchers::Contains;
using namespace meap_test;

namespace {

// Flips one bit of the byte at `offset` (from the end when negative).
void flip_byte(const fs::path& file, int64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  const auto size = static_cast<int64_t>(fs::file_size(file));
  const int64_t at = offset < 0 ? size + offset : offset;
  REQUIRE((at >= 0 && at < size));
  f.seekg(at);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(at);
  f.write(&c, 1);
}

// A run of 2 steps in dir/run; returns its latest checkpoint.
fs::path trained_run(const fs::path& dir, const fs::path& config) {
  REQUIRE(describe_status(run_meap({"train", config.string(), "train.max_steps=2"},
                                   dir / "train.log")) == "exit code 0");
  return *meap::latest_checkpoint((dir / "run").string());
}

std::string run_and_log(const std::vector<std::string>& args, const fs::path& log,
                        std::string* status = nullptr) {
  const std::string s = describe_status(run_meap(args, log));
  if (status) *status = s;
  return slurp(log);
}

}  // namespace

TEST_CASE("checkpoint: a flipped byte in any file is refused naming it", "[checkpoint][fault]") {
  micro_corpus();
  ScratchDir d("flip-checkpoint");
  const fs::path config = write_micro_config(d.path);
  const fs::path ckpt = trained_run(d.path, config);
  const auto manifest = meap::read_checkpoint_manifest(ckpt.string());
  CHECK(manifest.files.size() == 3);  // model, optim, tokenizer
  // Several offsets per file: header, body, last byte.
  for (const char* file : {"model.safetensors", "optim.safetensors", "tokenizer.model"}) {
    for (const int64_t offset : {int64_t{9}, int64_t{200}, int64_t{-1}}) {
      const fs::path path = ckpt / file;
      flip_byte(path, offset);
      INFO(file << " offset " << offset);
      std::string status;
      // Resume reads the weights and the moments (the run's tokenizer is data.tokenizer).
      const std::string log = run_and_log(
          {"train", config.string(), "--resume", "train.max_steps=3"}, d.path / "resume.log",
          &status);
      if (std::string(file) != "tokenizer.model") {
        CHECK(status == "exit code 1");
        CHECK_THAT(log, Contains(file) && Contains("corrupt"));
      }
      // generate reads the weights and the checkpoint's tokenizer.
      const std::string gen_log = run_and_log({"generate", ckpt.string(), "--prompt", "a",
                                               "--max-new-tokens", "2"},
                                              d.path / "generate.log", &status);
      if (std::string(file) != "optim.safetensors") {
        CHECK(status == "exit code 1");
        CHECK_THAT(gen_log, Contains(file) && Contains("corrupt"));
      }
      const std::string export_log =
          run_and_log({"export", ckpt.string(), "--out", (d.path / "hf").string()},
                      d.path / "export.log", &status);
      if (std::string(file) != "optim.safetensors") {
        CHECK(status == "exit code 1");
        CHECK_THAT(export_log, Contains(file) && Contains("corrupt"));
        CHECK_FALSE(fs::exists(d.path / "hf"));
      }
      fs::remove_all(d.path / "hf");  // the optim.safetensors rounds export fine
      flip_byte(path, offset);  // restored: the same bytes verify again
    }
  }
  // The restored checkpoint resumes and exports.
  CHECK(describe_status(run_meap({"train", config.string(), "--resume", "train.max_steps=3"},
                                 d.path / "ok.log")) == "exit code 0");
}

TEST_CASE("checkpoint: a damaged manifest is refused naming it", "[checkpoint][fault]") {
  micro_corpus();
  ScratchDir d("flip-manifest");
  const fs::path config = write_micro_config(d.path);
  const fs::path ckpt = trained_run(d.path, config);
  // A digit of the step number: still valid JSON, caught by the manifest's checksum.
  std::string text = slurp(ckpt / "manifest.json");
  const auto at = text.find("\"step\": 2");
  REQUIRE(at != std::string::npos);
  text[at + 8] = '7';
  write_text(ckpt / "manifest.json", text);
  std::string status;
  const std::string log = run_and_log({"train", config.string(), "--resume", "train.max_steps=3"},
                                      d.path / "resume.log", &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(log, Contains("manifest.json") && Contains("corrupt"));
}

TEST_CASE("checkpoint: a damaged latest pointer or step directory is never started over",
          "[checkpoint][fault]") {
  micro_corpus();
  ScratchDir d("damaged-run");
  const fs::path config = write_micro_config(d.path);
  const fs::path ckpt = trained_run(d.path, config);
  const fs::path checkpoints = d.path / "run" / "checkpoints";
  std::string status;

  SECTION("garbage in latest") {
    write_text(checkpoints / "latest", "\x01\x02garbage");
    const std::string log = run_and_log(
        {"train", config.string(), "--resume", "train.max_steps=3"}, d.path / "r.log", &status);
    CHECK(status == "exit code 1");
    CHECK_THAT(log, Contains("latest") && Contains("damaged"));
  }
  SECTION("latest is a directory") {
    fs::remove(checkpoints / "latest");
    fs::create_directory(checkpoints / "latest");
    const std::string log = run_and_log({"export", (d.path / "run").string(), "--out",
                                         (d.path / "hf").string()},
                                        d.path / "e.log", &status);
    CHECK(status == "exit code 1");
    CHECK_THAT(log, Contains("latest") && Contains("damaged"));
  }
  SECTION("the only step directory has no manifest") {
    fs::remove_all(checkpoints / "step-00000001");
    fs::remove(ckpt / "manifest.json");
    fs::remove(checkpoints / "latest");
    for (const bool resume : {false, true}) {
      std::vector<std::string> args = {"train", config.string(), "train.max_steps=3"};
      if (resume) args.push_back("--resume");
      const std::string log = run_and_log(args, d.path / "r.log", &status);
      CHECK(status == "exit code 1");
      CHECK_THAT(log, Contains("step-00000002") && Contains("manifest.json"));
    }
    CHECK(fs::exists(ckpt / "model.safetensors"));  // nothing was removed
  }
}

TEST_CASE("resume: a config change to the run is refused unless allowed, then recorded",
          "[checkpoint][config][fault]") {
  micro_corpus();
  ScratchDir d("resume-change");
  const fs::path config = write_micro_config(d.path);
  trained_run(d.path, config);
  std::string status;
  // MEAP -> NTP and another seed: refused, with both changes listed.
  std::string log = run_and_log({"train", config.string(), "--resume", "train.max_steps=3",
                                 "data.meap.mask_ratio=0", "run.seed=7"},
                                d.path / "refused.log", &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(log, Contains("data.meap.mask_ratio: 0.15 -> 0.0") &&
                      Contains("run.seed: 4321 -> 7") && Contains("--allow-config-change"));
  CHECK(meap::read_checkpoint_manifest(*meap::latest_checkpoint((d.path / "run").string()))
            .step == 2);
  // Safe keys (max_steps, intervals) need no flag.
  CHECK(describe_status(run_meap({"train", config.string(), "--resume", "train.max_steps=3",
                                  "log.interval=2"},
                                 d.path / "safe.log")) == "exit code 0");
  // With the flag: trained, and the change is in this and every later manifest.
  CHECK(describe_status(run_meap({"train", config.string(), "--resume", "train.max_steps=5",
                                  "data.meap.mask_ratio=0", "--allow-config-change"},
                                 d.path / "allowed.log")) == "exit code 0");
  const auto man =
      meap::read_checkpoint_manifest(*meap::latest_checkpoint((d.path / "run").string()));
  CHECK(man.step == 5);
  REQUIRE(man.config_changes.size() == 1);
  CHECK_THAT(man.config_changes[0], Contains("data.meap.mask_ratio: 0.15 -> 0.0 (at step 3)"));
}

TEST_CASE("train: an unusable run.out_dir is named", "[trainer][config][fault]") {
  micro_corpus();
  ScratchDir d("bad-out-dir");
  write_text(d.path / "a-file", "x");
  write_text(d.path / "config.yaml", micro_config_yaml(d.path / "a-file"));
  std::string status;
  std::string log = run_and_log({"train", (d.path / "config.yaml").string()}, d.path / "1.log",
                                &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(log, Contains("run.out_dir") && Contains("not a directory", Catch::CaseSensitive::No));
  CHECK_THAT(log, !Contains("internal error"));
  write_text(d.path / "config.yaml", micro_config_yaml(d.path / "a-file" / "below"));
  log = run_and_log({"train", (d.path / "config.yaml").string()}, d.path / "2.log", &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(log, Contains("run.out_dir"));
  CHECK_THAT(log, !Contains("internal error"));
}

TEST_CASE("export: non-finite weights are refused naming the tensor", "[checkpoint][export][fault]") {
  micro_corpus();
  ScratchDir d("nan-export");
  const fs::path config = write_micro_config(d.path);
  const fs::path ckpt = trained_run(d.path, config);
  // Rewrite the weights with one NaN, and the manifest's checksums with them (as a run
  // whose weights diverged would have written it).
  {
    const auto file = meap::SafetensorsFile::open((ckpt / "model.safetensors").string());
    meap::SafetensorsWriter w;
    for (const auto& [k, v] : file.metadata()) w.set_metadata(k, v);
    for (const meap::SafetensorsTensorInfo& info : file.tensors()) {
      std::vector<float> values(info.nbytes / sizeof(float));
      file.read(info.name, info.dtype, info.shape, values.data());
      if (info.name == "norm.weight") values[3] = std::numeric_limits<float>::quiet_NaN();
      w.add(info.name, info.dtype, info.shape, values.data());
    }
    w.write((ckpt / "model.safetensors").string());
  }
  meap::write_checkpoint_manifest(ckpt.string(), meap::read_checkpoint_manifest(ckpt.string()));
  std::string status;
  const std::string log = run_and_log({"export", ckpt.string(), "--out", (d.path / "hf").string()},
                                      d.path / "export.log", &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(log, Contains("norm.weight") && Contains("NaN"));
  CHECK_FALSE(fs::exists(d.path / "hf"));
  // A resume of it stops at its first step, and does not call that checkpoint a good one
  // (the issue: "the last good checkpoint" named the NaN one).
  const std::string resume_log = run_and_log(
      {"train", config.string(), "--resume", "train.max_steps=3"}, d.path / "resume.log", &status);
  CHECK(status == "exit code 1");
  CHECK_THAT(resume_log, Contains("step 3") && Contains(ckpt.filename().string()));
  CHECK_THAT(resume_log, !Contains("good", Catch::CaseSensitive::No));
}
