#include "cli/sft_options.hpp"

#include "meap/core/error.hpp"

namespace meap::cli {

SftOptions SftArgs::options(uint64_t seed) const {
  if (!(mask_ratio >= 0 && mask_ratio < 1))
    fail("--mask-ratio (sft.mask_ratio) must be in [0, 1) (0 = NTP-SFT), got ", mask_ratio);
  SftOptions o;
  o.mask_ratio = mask_ratio;
  o.min_answer_tokens = min_answer_tokens;
  o.layout = parse_sft_layout(layout, "--layout");
  o.mask_scope = parse_sft_mask_scope(mask_scope, "--mask-scope");
  o.seed = seed;
  return o;
}

void add_sft_options(CommandLine& cli, SftArgs& args, CLI::Option* needs) {
  const SftOptions defaults;
  cli.add_option("--mask-ratio", args.mask_ratio, "P",
                 "sft.mask_ratio: share of answer tokens masked in the MEAP copy, in [0, 1);\n"
                 "0 = NTP-SFT (default " + str_cat(defaults.mask_ratio) + ")")
      ->needs(needs);
  cli.add_option("--min-answer-tokens", args.min_answer_tokens, "N",
                 "sft.min_answer_tokens: answers of at most N tokens get NTP-SFT (default " +
                     std::to_string(defaults.min_answer_tokens) + ")")
      ->check(at_least(0))
      ->needs(needs);
  cli.add_option("--layout", args.layout, "LAYOUT",
                 "sft.layout: concat (the paper: original and masked copy are one document)\n"
                 "or separate (the copy is a document of its own) (default concat)")
      ->check(CLI::IsMember({"concat", "separate"}))
      ->needs(needs);
  cli.add_option("--mask-scope", args.mask_scope, "SCOPE",
                 "sft.mask_scope: mask among the answer tokens, or among all of the copy's\n"
                 "tokens but BOS (default answer)")
      ->check(CLI::IsMember({"answer", "all"}))
      ->needs(needs);
}

}  // namespace meap::cli
