// SFT end to end, in process: a micro model pre-trained briefly, then fine-tuned from the
// same checkpoint with NTP-SFT (sft.mask_ratio=0) and MEAP-SFT (the default 0.1) for two
// epochs; the held-out answer loss falls in both. An SFT run stopped in its second epoch and
// resumed equals the uninterrupted run bit for bit. Shards of another tokenizer than the
// model's are refused.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <map>

#include "integration/sft_fixture.hpp"
#include "meap/train/batch_source.hpp"
#include "meap/train/checkpoint.hpp"

using namespace meap_test;

namespace {

meap::Config sft_config(const fs::path& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = sft_overrides();
  o.insert(o.end(), extra.begin(), extra.end());
  return meap::parse_config(micro_config_yaml(out), o, "sft config");
}

std::map<int64_t, double> val_losses(const fs::path& run) {
  std::map<int64_t, double> v;
  for (const auto& j : read_metrics(run))
    if (j.contains("val_loss")) v[j.at("step").get<int64_t>()] = j.at("val_loss").get<double>();
  return v;
}

// [MASK]s among the inputs of the training batches of epoch 0.
int64_t masks_in_epoch0(const meap::Config& cfg) {
  const auto source = meap::open_batch_source(cfg, true, 0, 1);
  const int32_t mask = source->identity().special.mask;
  int64_t masks = 0;
  for (uint64_t b = 0; b < source->batches_in_epoch(0); ++b) {
    const meap::BatchView v = source->next();
    for (int64_t i = 0; i < v.batch_size * v.seq_len; ++i) masks += v.inputs[i] == mask;
  }
  return masks;
}

std::string checkpoint_at(const fs::path& run, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return (run / "checkpoints" / buf).string();
}

}  // namespace

TEST_CASE("sft: NTP-SFT and MEAP-SFT from one checkpoint both lower the held-out answer loss",
          "[sft][trainer]") {
  const auto t0 = std::chrono::steady_clock::now();
  const SingleThreaded single_threaded;
  const fs::path pretrained = pretrained_micro_model();
  ScratchDir d("sft-ntp-meap");
  const fs::path ntp = d.path / "ntp", meap_run = d.path / "meap";
  const meap::Config ntp_cfg = sft_config(ntp, {"sft.mask_ratio=0"});
  const meap::Config meap_cfg = sft_config(meap_run);  // sft.mask_ratio: 0.1, the default
  REQUIRE(meap_cfg.sft.mask_ratio == 0.1);
  // The one key that differs, and it makes masks.
  const auto diff = meap::config_schema().differences(ntp_cfg, sft_config(ntp));
  REQUIRE(diff.size() == 1);
  CHECK_THAT(diff.front(), Catch::Contains("sft.mask_ratio"));
  CHECK(masks_in_epoch0(ntp_cfg) == 0);
  const int64_t masks = masks_in_epoch0(meap_cfg);
  CHECK(masks > 0);

  const meap::TrainResult rn = meap::train(ntp_cfg, quiet());
  const meap::TrainResult rm = meap::train(meap_cfg, quiet());
  const auto source = meap::open_batch_source(meap_cfg, true, 0, 1);
  const int64_t two_epochs =
      static_cast<int64_t>(source->batches_in_epoch(0) + source->batches_in_epoch(1));
  CHECK(rm.final_step == two_epochs);  // train.max_epochs=2
  CHECK(rn.final_step > 0);

  for (const auto& [name, run] : {std::pair{"NTP-SFT", ntp}, std::pair{"MEAP-SFT", meap_run}}) {
    INFO(name);
    const auto v = val_losses(run);
    REQUIRE(v.count(0));  // the starting point, logged before the first step
    REQUIRE(v.size() >= 3);
    const double before = v.at(0), after = v.rbegin()->second;
    std::printf("sft e2e: %s held-out answer loss %.4f at step 0 -> %.4f at step %lld\n", name,
                before, after, static_cast<long long>(v.rbegin()->first));
    CHECK(after < before - 0.1);
  }
  // Validation never masks: both runs start from the same weights on the same answers.
  CHECK(val_losses(ntp).at(0) == val_losses(meap_run).at(0));
  std::printf("sft e2e: %lld [MASK]s in MEAP-SFT's epoch 0; two epochs are %lld steps of "
              "NTP-SFT, %lld of MEAP-SFT (longer documents); %.1f s\n",
              static_cast<long long>(masks), static_cast<long long>(rn.final_step),
              static_cast<long long>(rm.final_step),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST_CASE("sft: a MEAP-SFT run stopped in its second epoch and resumed equals the straight run "
          "bit for bit", "[sft][trainer][resume]") {
  const SingleThreaded single_threaded;
  ScratchDir d("sft-resume");
  const fs::path straight = d.path / "straight", split = d.path / "split";
  const meap::TrainResult ra = meap::train(sft_config(straight), quiet());

  // Stop two steps into epoch 1 (fresh masks, a new sample order), then --resume.
  const auto source = meap::open_batch_source(sft_config(split), true, 0, 1);
  const int64_t k = static_cast<int64_t>(source->batches_in_epoch(0)) + 2;
  REQUIRE(k < ra.final_step);
  int polls = 0;
  meap::TrainerOptions stop = quiet();
  stop.stop_requested = [&] { return ++polls >= k; };
  const meap::TrainResult r1 = meap::train(sft_config(split), stop);
  REQUIRE(r1.interrupted);
  REQUIRE(r1.final_step == k);
  const meap::CheckpointManifest mid = meap::read_checkpoint_manifest(checkpoint_at(split, k));
  CHECK(mid.streamer.epoch == 1);
  CHECK(mid.streamer.batch == 2);
  const meap::TrainResult r2 = meap::train(sft_config(split), quiet(true));
  CHECK(r2.start_step == k);
  REQUIRE(r2.final_step == ra.final_step);

  const auto la = loss_lines(straight), lb = loss_lines(split);
  REQUIRE(la.size() == static_cast<size_t>(ra.final_step));
  REQUIRE(lb.size() == la.size());
  for (size_t i = 0; i < la.size(); ++i) {
    INFO("step " << i + 1);
    for (const char* key : {"step", "loss", "grad_norm", "lr", "tokens_seen"})
      CHECK(lb[i].at(key) == la[i].at(key));
  }
  CHECK(val_losses(split).at(ra.final_step) == val_losses(straight).at(ra.final_step));
  const std::string ca = checkpoint_at(straight, ra.final_step), cb = checkpoint_at(split, ra.final_step);
  const std::string wa = slurp(ca + "/model.safetensors");
  REQUIRE(wa.size() > 1000);
  CHECK((wa == slurp(cb + "/model.safetensors")));
  CHECK((slurp(ca + "/optim.safetensors") == slurp(cb + "/optim.safetensors")));
  CHECK(meap::read_checkpoint_manifest(cb).streamer == meap::read_checkpoint_manifest(ca).streamer);
}

TEST_CASE("sft: SFT shards of another tokenizer than checkpoint.init_from's model are refused",
          "[sft][trainer]") {
  const SingleThreaded single_threaded;
  const fs::path pretrained = pretrained_micro_model();
  // The pre-trained model's checkpoint holds the corpus's tokenizer; a second tokenizer of the
  // same vocabulary size prepares the SFT shards (and is data.tokenizer, so only the model
  // check can catch it).
  const MicroCorpus other = make_corpus("other-corpus", micro_corpus().vocab_size, 100'000, 99u);
  ScratchDir d("sft-other-tokenizer");
  write_text(d.path / "records.jsonl", sft_records(3u, 80));
  meap::SftPrepareOptions o;
  o.out_dir = (d.path / "data").string();
  o.inputs = {(d.path / "records.jsonl").string()};
  o.tokenizer = other.tokenizer;
  o.seq_len = 63;
  o.val_fraction = 0;
  meap::prepare_sft(o);
  const meap::Config cfg =
      sft_config(d.path / "run", {"sft.train='" + (d.path / "data" / "sft-train-*.bin").string() + "'",
                                  "sft.val=''", "data.tokenizer='" + other.tokenizer + "'"});
  try {
    meap::train(cfg, quiet());
    FAIL("shards of another tokenizer were accepted");
  } catch (const meap::Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Catch::Contains("sft.train") && Catch::Contains("checkpoint.init_from") &&
                        Catch::Contains("tokenizer.model"));
  }
  CHECK_FALSE(fs::exists(d.path / "run" / "checkpoints"));
}
