// Rank discovery from the launchers' environment variables.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "meap/dist/communicator.hpp"

namespace {

// Sets the given variables for one scope and clears every launcher variable around it.
struct LauncherEnv {
  static constexpr const char* kAll[] = {
      "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
      "SLURM_PROCID",         "SLURM_NTASKS",         "SLURM_LOCALID",
      "RANK",                 "WORLD_SIZE",           "LOCAL_RANK"};
  explicit LauncherEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* v : kAll) ::unsetenv(v);
    for (const auto& [k, v] : vars) ::setenv(k, v, 1);
  }
  ~LauncherEnv() {
    for (const char* v : kAll) ::unsetenv(v);
  }
};

}  // namespace

TEST_CASE("rank discovery reads OpenMPI, Slurm and torchrun variables", "[dist]") {
  {
    LauncherEnv env({});
    const meap::RankInfo r = meap::discover_rank();
    CHECK(r.world_size == 1);
    CHECK(r.launcher == "none");
  }
  {
    LauncherEnv env({{"OMPI_COMM_WORLD_RANK", "3"},
                     {"OMPI_COMM_WORLD_SIZE", "8"},
                     {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                     {"RANK", "0"},
                     {"WORLD_SIZE", "2"}});  // OpenMPI's take precedence
    const meap::RankInfo r = meap::discover_rank();
    CHECK(r.rank == 3);
    CHECK(r.world_size == 8);
    CHECK(r.local_rank == 1);
    CHECK(r.launcher == "openmpi");
  }
  {
    LauncherEnv env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}});
    const meap::RankInfo r = meap::discover_rank();
    CHECK(r.rank == 5);
    CHECK(r.world_size == 16);
    CHECK(r.local_rank == 1);
    CHECK(r.launcher == "slurm");
  }
  {
    LauncherEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});  // no LOCAL_RANK: = RANK
    const meap::RankInfo r = meap::discover_rank();
    CHECK(r.rank == 1);
    CHECK(r.local_rank == 1);
    CHECK(r.launcher == "torchrun");
  }
  {
    LauncherEnv env({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(meap::discover_rank(), Catch::Contains("outside WORLD_SIZE=2"));
  }
  {
    LauncherEnv env({{"RANK", "x"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(meap::discover_rank(), Catch::Contains("RANK='x'"));
  }
}
