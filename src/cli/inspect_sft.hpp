// `meap inspect --sft GLOB --sft-sample N`: one SFT sample's training layout (inspect_sft.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "cli/sft_options.hpp"
#include "meap/train/config.hpp"

namespace meap::cli {

struct SftSampleArgs {
  std::string shards;     // --sft: glob of SFT shards (sorted by path, as the streamer reads)
  uint64_t sample = 0;    // --sft-sample: index in shard order, as the streamer numbers them
  uint64_t epoch = 0;     // --epoch: the masks are drawn per (seed, epoch, sample)
  uint64_t seed = RunConfig{}.seed;  // --seed: run.seed (with its default)
  std::string tokenizer;  // --tokenizer; default: the one beside the shards
  SftArgs sft;
};

// Prints the table and returns the exit code (0).
int inspect_sft_sample(const SftSampleArgs& args);

}  // namespace meap::cli
