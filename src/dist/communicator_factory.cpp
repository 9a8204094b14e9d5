// make_communicator: one process gets Local; a multi-rank launch gets MPI.
#include "local_communicator.hpp"
#include "meap/error.hpp"

namespace meap {

#ifdef MEAP_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
#endif

std::unique_ptr<Communicator> make_communicator(double timeout_s) {
  const RankInfo info = discover_rank();
  if (info.world_size == 1) return std::make_unique<LocalCommunicator>();
#ifdef MEAP_WITH_MPI
  if (info.launcher == "openmpi" || info.launcher == "slurm") {
    auto comm = make_mpi_communicator(timeout_s);
    if (comm->world_size() != info.world_size || comm->rank() != info.rank)
      fail("MPI reports rank ", comm->rank(), " of ", comm->world_size(), " but the ",
           info.launcher, " environment says ", info.rank, " of ", info.world_size);
    return comm;
  }
  fail("launched as rank ", info.rank, " of ", info.world_size, " by ", info.launcher,
       ", but meap's CPU data parallelism runs over MPI: launch with mpirun or srun");
#else
  (void)timeout_s;
  fail("launched as rank ", info.rank, " of ", info.world_size, " (", info.launcher,
       ") but this build has no MPI (install libopenmpi-dev and rebuild with -DMEAP_MPI=ON)");
#endif
}

}  // namespace meap
