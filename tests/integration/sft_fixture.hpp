// Shared by the SFT end-to-end tests (integration and mpi): a micro model pre-trained briefly
// on the micro corpus, and a small SFT set in the same vocabulary whose answers need the
// prompt (repeat a list of words), prepared by `meap::prepare_sft` with the corpus's
// tokenizer. Both are made once per test process.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "integration/train_fixture.hpp"
#include "meap/core/error.hpp"
#include "meap/data/sft_prepare.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"

namespace meap_test {

// Prompt: 3 to 7 words of the corpus; answer: the same words and a full stop. The corpus's
// 300-piece tokenizer is mostly byte pieces (a word is a few tokens), so answers have 17
// tokens on average (5521 in the 320 training samples, measured): with
// sft.min_answer_tokens=16 part of them get a masked copy.
inline std::string sft_records(uint32_t seed, int n) {
  uint32_t state = seed;
  const auto draw = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 16;
  };
  std::string jsonl;
  for (int r = 0; r < n; ++r) {
    std::string words;
    const int k = 3 + draw() % 5;
    for (int i = 0; i < k; ++i)
      words += (i ? " " : "") + std::string(micro_words()[draw() % kMicroWords]);
    jsonl += "{\"prompt\": \"" + words + "\", \"response\": \"" + words + ".\"}\n";
  }
  return jsonl;
}

struct SftSet {
  std::string train_glob, val_glob;
  uint64_t train_samples = 0, val_samples = 0;
};

// 400 records, a fifth of them held out; samples of at most 64 tokens, so that a MEAP
// concat document (2n - 1 positions) fits rows of 128.
inline const SftSet& sft_set() {
  static const SftSet set = [] {
    const fs::path dir = train_root() / "sft";
    write_text(dir / "records.jsonl", sft_records(7u, 400));
    meap::SftPrepareOptions o;
    o.out_dir = (dir / "data").string();
    o.inputs = {(dir / "records.jsonl").string()};
    o.tokenizer = micro_corpus().tokenizer;
    o.seq_len = 63;
    o.val_fraction = 0.2;
    const meap::SftPrepareSummary s = meap::prepare_sft(o);
    std::printf("sft fixture: %llu train and %llu val samples (%llu tokens, %llu of them answer "
                "tokens, in train), %llu prompts truncated, %llu records rejected\n",
                static_cast<unsigned long long>(s.train_samples),
                static_cast<unsigned long long>(s.val_samples),
                static_cast<unsigned long long>(s.train_tokens),
                static_cast<unsigned long long>(s.train_answer_tokens),
                static_cast<unsigned long long>(s.truncated),
                static_cast<unsigned long long>(s.rejected_total()));
    return SftSet{(dir / "data" / "sft-train-*.bin").string(),
                  (dir / "data" / "sft-val-*.bin").string(), s.train_samples, s.val_samples};
  }();
  return set;
}

// The model of both stages: the micro config's with rows of 128 positions.
inline const std::vector<std::string>& sft_model_overrides() {
  static const std::vector<std::string> o = {"model.max_seq_len=128"};
  return o;
}

// 40 steps of MEAP pre-training of the micro model on the micro corpus (rows of 32 tokens);
// returns the run directory (checkpoint.init_from takes its latest checkpoint).
inline const fs::path& pretrained_micro_model() {
  static const fs::path run = [] {
    const SingleThreaded single_threaded;
    const fs::path out = train_root() / "pretrained";
    std::vector<std::string> o = sft_model_overrides();
    o.insert(o.end(), {"train.max_steps=40", "checkpoint.interval=1000", "eval.interval=1000"});
    meap::TrainerOptions quiet;
    quiet.quiet = true;
    const meap::TrainResult r =
        meap::train(meap::parse_config(micro_config_yaml(out), o, "pretraining"), quiet);
    if (r.final_step != 40) meap::fail("the SFT fixture's pre-training stopped at ", r.final_step);
    return out;
  }();
  return run;
}

// The overrides that turn the micro config into an SFT run from the pre-trained model:
// sft.train / sft.val instead of data.train / data.val, rows of 128, 2 epochs, answers of
// more than 16 tokens masked (the default sft.mask_ratio 0.1 gives them 2 or 3 [MASK]s),
// validation every 5 steps.
inline std::vector<std::string> sft_overrides() {
  std::vector<std::string> o = sft_model_overrides();
  o.insert(o.end(), {"data.train=''", "data.val=''", "sft.train='" + sft_set().train_glob + "'",
                     "sft.val='" + sft_set().val_glob + "'", "data.seq_len=128",
                     "sft.min_answer_tokens=16", "train.max_epochs=2", "eval.interval=5",
                     "checkpoint.interval=1000", "checkpoint.keep_last=5",
                     "checkpoint.init_from='" + pretrained_micro_model().string() + "'"});
  return o;
}

}  // namespace meap_test
