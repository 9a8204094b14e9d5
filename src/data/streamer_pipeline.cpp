#include "meap/data/streamer_pipeline.hpp"

#include <glob.h>

#include <algorithm>

#include "meap/core/error.hpp"

namespace meap {

int64_t check_batch_geometry(int64_t seq_len, int64_t global_batch_size, int rank,
                             int world_size, int prefetch) {
  if (seq_len <= 0) fail("data.seq_len must be positive, got ", seq_len);
  if (world_size <= 0 || rank < 0 || rank >= world_size)
    fail("rank ", rank, " is outside a world of ", world_size);
  if (global_batch_size <= 0 || global_batch_size % world_size != 0)
    fail("train.global_batch_size (", global_batch_size,
         ") must be a positive multiple of the number of ranks (", world_size, ")");
  if (prefetch < 0) fail("prefetch depth must be >= 0, got ", prefetch);
  return global_batch_size / world_size;
}

std::vector<std::string> expand_shard_glob(const std::string& pattern, const char* kind,
                                           const char* hint) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> paths;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (paths.empty()) fail("no ", kind, " shards match '", pattern, "' (", hint, ")");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace meap
