// ZeRO-1 bookkeeping: which part of the flat parameter layout a rank's optimizer shard
// covers, and how that range cuts the named parameters (a shard boundary may fall inside a
// tensor, so weight decay is decided per segment, not per shard).
#pragma once

#include <cstdint>
#include <vector>

#include "meap/model/llama.hpp"

namespace meap {

// Shards start on multiples of this many elements (256 bytes in f32), so the trainer
// builds the model with flat_multiple = world_size * kZeroShardAlign.
constexpr int64_t kZeroShardAlign = 64;

// Rank r of W owns flat elements [begin, begin + length) of a flat buffer of W * length.
struct ShardRange {
  int64_t begin = 0, length = 0;
  int64_t end() const { return begin + length; }
};

// flat_length must divide by world_size (the model pads it).
ShardRange shard_range(int64_t flat_length, int rank, int world_size);

// One run of consecutive elements of one parameter inside a shard: flat elements
// [offset, offset + length), updated with weight decay or without (norm gains).
struct ShardSegment {
  int64_t offset = 0;  // in the flat layout; offset - range.begin inside the shard
  int64_t length = 0;
  bool weight_decay = true;
  bool operator==(const ShardSegment&) const = default;
};

// The parts of `parameters` inside `range`, in flat order. Alignment gaps between
// parameters and the padding after the last one belong to no segment (they stay zero).
std::vector<ShardSegment> shard_segments(const std::vector<NamedParameter>& parameters,
                                         const ShardRange& range);

}  // namespace meap
