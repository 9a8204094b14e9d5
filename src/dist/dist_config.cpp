#include "meap/dist/dist_config.hpp"

namespace meap {

ConfigKeys<DistConfig> dist_config_keys() {
  return {{
      MEAP_CONFIG_KEY(DistConfig, timeout_s),
      MEAP_CONFIG_KEY(DistConfig, zero1),
      MEAP_CONFIG_KEY(DistConfig, bucket_mb),
  }};
}

void validate(const DistConfig& d) {
  require_config(d.timeout_s > 0, "dist.timeout_s", "a positive number of seconds", d.timeout_s);
  require_config(d.bucket_mb >= 0, "dist.bucket_mb", ">= 0 (0 = one all-reduce after the backward)",
                 d.bucket_mb);
}

}  // namespace meap
