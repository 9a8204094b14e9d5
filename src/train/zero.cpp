#include "meap/train/zero.hpp"

#include <algorithm>

namespace meap {

ShardRange shard_range(int64_t flat_length, int rank, int world_size) {
  MEAP_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "rank ", rank, " of ",
             world_size);
  MEAP_CHECK(flat_length % world_size == 0, "flat length ", flat_length,
             " does not split into ", world_size, " equal shards");
  const int64_t length = flat_length / world_size;
  return {rank * length, length};
}

std::vector<ShardSegment> shard_segments(const std::vector<NamedParameter>& parameters,
                                         const ShardRange& range) {
  std::vector<ShardSegment> out;
  for (const NamedParameter& p : parameters) {
    const int64_t begin = std::max(p.offset, range.begin);
    const int64_t end = std::min(p.offset + p.value.numel(), range.end());
    if (begin < end) out.push_back({begin, end - begin, p.weight_decay});
  }
  std::sort(out.begin(), out.end(),
            [](const ShardSegment& a, const ShardSegment& b) { return a.offset < b.offset; });
  return out;
}

}  // namespace meap
