// make_communicator: one process gets Local; a multi-rank launch gets MPI for host buffers,
// NCCL (bootstrapped over MPI) for device buffers.
#include "local_communicator.hpp"
#include "meap/core/error.hpp"
#include "nccl_communicator.hpp"

namespace meap {

#ifdef MEAP_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
#endif

std::unique_ptr<Communicator> make_communicator(double timeout_s, Device buffers) {
  const RankInfo info = discover_rank();
  if (info.world_size == 1) return std::make_unique<LocalCommunicator>();
#ifdef MEAP_WITH_MPI
  if (info.launcher == "openmpi" || info.launcher == "slurm") {
    std::unique_ptr<Communicator> comm;
    if (buffers == Device::cuda) {
#ifdef MEAP_WITH_NCCL
      comm = make_nccl_communicator(timeout_s, info);
#else
      fail("rank ", info.rank, " of ", info.world_size, ": GPU data parallelism runs over NCCL, "
           "but this build has none (install NCCL under /usr/local/cuda and rebuild with "
           "-DMEAP_NCCL=ON)");
#endif
    } else {
      comm = make_mpi_communicator(timeout_s);
    }
    if (comm->world_size() != info.world_size || comm->rank() != info.rank)
      fail(comm->name(), " reports rank ", comm->rank(), " of ", comm->world_size(), " but the ",
           info.launcher, " environment says ", info.rank, " of ", info.world_size);
    return comm;
  }
  fail("launched as rank ", info.rank, " of ", info.world_size, " by ", info.launcher,
       ", but meap's data parallelism runs over MPI", buffers == Device::cuda ? " (NCCL is "
       "bootstrapped over it)" : "", ": launch with mpirun or srun");
#else
  (void)timeout_s;
  (void)buffers;
  fail("launched as rank ", info.rank, " of ", info.world_size, " (", info.launcher,
       ") but this build has no MPI (install libopenmpi-dev and rebuild with -DMEAP_MPI=ON)");
#endif
}

}  // namespace meap
