#include "meap/data/data_config.hpp"

namespace meap {

ConfigKeys<DataConfig> data_config_keys() {
  return {{
      MEAP_CONFIG_KEY(DataConfig, train),
      MEAP_CONFIG_KEY(DataConfig, val),
      MEAP_CONFIG_KEY(DataConfig, tokenizer),
      MEAP_CONFIG_KEY(DataConfig, seq_len),
      MEAP_CONFIG_KEY(DataConfig, document_mask),
      MEAP_CONFIG_KEY(DataConfig, meap.mask_ratio),
      MEAP_CONFIG_KEY(DataConfig, meap.keep_special_unmasked),
      MEAP_CONFIG_KEY(DataConfig, meap.sampling),
  }};
}

void validate(const DataConfig& d) {
  require_config(d.seq_len > 0, "data.seq_len", "a positive integer", d.seq_len);
  const double mr = d.meap.mask_ratio;
  require_config(mr >= 0 && mr < 1, "data.meap.mask_ratio",
                 "in [0, 1) (0 = plain next-token prediction)", mr);
}

}  // namespace meap
