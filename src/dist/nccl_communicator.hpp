// NcclCommunicator: collectives over device (CUDA) buffers with NCCL, bootstrapped over MPI
// (rank 0 makes the unique id, MPI broadcasts it). Non-blocking NCCL: every wait polls the
// stream and NCCL's async error, and a collective past dist.timeout_s aborts the
// communicator and throws, instead of hanging forever.
#pragma once

#include <memory>

#include "meap/dist/communicator.hpp"

namespace meap {

#if defined(MEAP_WITH_NCCL) && defined(MEAP_WITH_MPI)
// info: where this process stands (discover_rank()); its local rank picks the GPU
// (local_rank % device count). A world of one needs no MPI: the id is made locally and the
// host collectives are the identity. Throws meap::Error when NCCL cannot start in time.
std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s, const RankInfo& info);
#endif

}  // namespace meap
