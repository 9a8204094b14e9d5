#include "meap/data/sft_config.hpp"

namespace meap {

ConfigKeys<SftConfig> sft_config_keys() {
  return {{
      MEAP_CONFIG_KEY(SftConfig, train),
      MEAP_CONFIG_KEY(SftConfig, val),
      MEAP_CONFIG_KEY(SftConfig, mask_ratio),
      MEAP_CONFIG_KEY(SftConfig, min_answer_tokens),
      MEAP_CONFIG_KEY(SftConfig, layout),
      MEAP_CONFIG_KEY(SftConfig, mask_scope),
  }};
}

void validate(const SftConfig& s) {
  require_config(s.mask_ratio >= 0 && s.mask_ratio < 1, "sft.mask_ratio",
                 "in [0, 1) (0 = plain NTP-SFT)", s.mask_ratio);
  require_config(s.min_answer_tokens >= 0, "sft.min_answer_tokens", ">= 0", s.min_answer_tokens);
}

SftOptions sft_options(const SftConfig& s, uint64_t seed, bool train) {
  SftOptions o;
  o.mask_ratio = train ? s.mask_ratio : 0.0;
  o.min_answer_tokens = s.min_answer_tokens;
  o.layout = s.layout;
  o.mask_scope = s.mask_scope;
  o.seed = seed;
  return o;
}

}  // namespace meap
