// The host collectives on real MPI processes: tests/dist/collectives_probe checks every
// rank's results itself; here it runs under mpirun, whole and with sliced MPI calls.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "integration/train_fixture.hpp"

using namespace meap_test;

TEST_CASE("mpi: broadcast and all-reduce give every rank the right values", "[mpi]") {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  ScratchDir d("mpi-collectives");
  const std::string probe = MEAP_BINARY_DIR "/tests/meap_collectives_probe";
  for (const char* max_count : {"", "7"}) {  // "7": every call in slices of 7 elements
    std::vector<std::string> args = {"--oversubscribe", "-np", "2"};
    if (*max_count) {
      ::setenv("MEAP_MPI_MAX_COUNT", max_count, 1);
      args.insert(args.end(), {"-x", "MEAP_MPI_MAX_COUNT"});
    }
    args.push_back(probe);
    Child job("mpirun", args, d.path / "probe.log");
    REQUIRE(job.started());
    REQUIRE(job.wait(60));
    INFO(job.log());
    CHECK(job.exited_ok());
    CHECK(job.log().find("collectives ok on 2 ranks") != std::string::npos);
    ::unsetenv("MEAP_MPI_MAX_COUNT");
  }
}
