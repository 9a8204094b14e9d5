// The SFT options of `meap batches --sft` and `meap inspect --sft-sample`: one flag per
// sft.* config key, with the key's default (SftOptions), so that a command line names the
// same settings a run config does (docs/sft.md, "Options").
#pragma once

#include <cstdint>
#include <string>

#include "meap/data/sft_builder.hpp"

#include "cli/command_line.hpp"

namespace meap::cli {

struct SftArgs {
  double mask_ratio = SftOptions{}.mask_ratio;                // --mask-ratio: sft.mask_ratio
  int64_t min_answer_tokens = SftOptions{}.min_answer_tokens;  // --min-answer-tokens
  std::string layout = sft_layout_name(SftOptions{}.layout);   // --layout: sft.layout
  std::string mask_scope = sft_mask_scope_name(SftOptions{}.mask_scope);  // --mask-scope

  // The options seeded by `seed` (run.seed); bad values are refused naming the flag.
  SftOptions options(uint64_t seed) const;
};

// Adds --mask-ratio, --min-answer-tokens, --layout and --mask-scope; each needs `needs`
// (the option that selects SFT data, e.g. --sft) when it is given.
void add_sft_options(CommandLine& cli, SftArgs& args, CLI::Option* needs);

}  // namespace meap::cli
