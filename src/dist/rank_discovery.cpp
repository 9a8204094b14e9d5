// Rank discovery from the launcher's environment variables.
#include <cstdlib>
#include <string>

#include "meap/dist/communicator.hpp"
#include "meap/core/error.hpp"

namespace meap {

namespace {

bool read_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0) fail("environment variable ", name, "='", v, "' is not a rank");
  *out = static_cast<int>(x);
  return true;
}

bool try_launcher(const char* rank, const char* size, const char* local, const char* name,
                  RankInfo* info) {
  RankInfo r;
  if (!read_int(rank, &r.rank) || !read_int(size, &r.world_size)) return false;
  if (!read_int(local, &r.local_rank)) r.local_rank = r.rank;
  if (r.world_size < 1 || r.rank >= r.world_size)
    fail(rank, "=", r.rank, " is outside ", size, "=", r.world_size);
  r.launcher = name;
  *info = r;
  return true;
}

}  // namespace

RankInfo discover_rank() {
  RankInfo info;
  if (try_launcher("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                   "openmpi", &info) ||
      try_launcher("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm", &info) ||
      try_launcher("RANK", "WORLD_SIZE", "LOCAL_RANK", "torchrun", &info))
    return info;
  return RankInfo{};
}

}  // namespace meap
