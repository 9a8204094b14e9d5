// DistConfig: the `dist:` section of a run config -- how ranks wait for and combine their
// work -- with its keys and its own range checks.
#pragma once

#include "meap/core/config_schema.hpp"

namespace meap {

struct DistConfig {
  double timeout_s = 600;  // a collective still waiting after this long ends every rank
  // ZeRO-1: each rank keeps the AdamW moments of 1 / world_size of the parameters
  // (reduce-scatter of the gradients, sharded update, all-gather of the weights).
  bool zero1 = false;
  // Gradient all-reduce in buckets of this many MiB, started during the last micro-batch's
  // backward (overlapping the remaining layers); 0 = one all-reduce after the backward.
  double bucket_mb = 25;
  bool operator==(const DistConfig&) const = default;
};

ConfigKeys<DistConfig> dist_config_keys();

void validate(const DistConfig& dist);

}  // namespace meap
