// Communicator: the collectives data-parallel training needs, over host buffers (MPI) or
// device buffers (NCCL: f32, f64 and bf16; each call returns once the GPU is done). Local is
// the one-process case. Every collective is guarded by a watchdog: one still waiting after
// dist.timeout_s (a rank died) ends the process (MPI) or aborts the NCCL communicator and
// throws, with a message naming it, instead of hanging forever.
#pragma once

#include <memory>
#include <string>

#include "meap/core/tensor.hpp"

namespace meap {

// Where this process stands in the job, from the launcher's environment.
struct RankInfo {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string launcher = "none";  // "openmpi", "slurm", "torchrun" or "none"
};

// Reads OpenMPI (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK), Slurm (SLURM_PROCID /
// SLURM_NTASKS / SLURM_LOCALID) or torchrun-style (RANK / WORLD_SIZE / LOCAL_RANK)
// variables, in that order; none of them means a single process.
RankInfo discover_rank();

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string name() const = 0;

  // In place: every rank ends with the element-wise sum over ranks. f32 or f64.
  virtual void all_reduce_sum(const Tensor& t, const char* what) = 0;
  // The same for a few host doubles (loss sums, token weights).
  virtual void all_reduce_sum(double* values, int n, const char* what) = 0;
  // ZeRO-1's two halves of an all-reduce. full (world_size * S) is world_size equal shards
  // of S elements; rank r's shard (S) gets the element-wise sum over ranks of their shard
  // r. shard is either a separate buffer or, in place, the first S elements of full (as
  // MPI_IN_PLACE does it; full is then scratch: the trainer's gradients, zeroed before the
  // next step). f32 or f64, one dtype.
  virtual void reduce_scatter_sum(const Tensor& full, const Tensor& shard, const char* what) = 0;
  // The inverse gather: full (world_size * S) ends with every rank's shard (S) at offset
  // rank * S. shard may be (and in the trainer is) the view of full at that offset, in
  // which case nothing is copied locally.
  virtual void all_gather(const Tensor& shard, const Tensor& full, const char* what) = 0;
  // Device buffers are written by kernels queued on the backend's stream (a cudaStream_t;
  // Backend::stream()): every device collective first waits for the work queued there so
  // far -- on the device, not the host. Null (the default) for host buffers.
  virtual void set_producer_stream(void* stream) { (void)stream; }

  // Non-blocking all-reduce, for gradient buckets reduced while the backward goes on:
  // starts summing t in place (f32 or f64) and returns; wait_started() completes every one
  // started since the last wait (under the watchdog, like a blocking collective). Until
  // then t must not be touched.
  virtual void all_reduce_sum_start(const Tensor& t, const char* what) = 0;
  virtual void wait_started(const char* what) = 0;
  // Every rank's t (any dtype, same shape everywhere) becomes root's t.
  virtual void broadcast(const Tensor& t, int root, const char* what) = 0;
  virtual void barrier(const char* what) = 0;
};

// Local when this is a single process; with several ranks, Mpi for host buffers
// (buffers = Device::cpu) or Nccl for device buffers (Device::cuda: NCCL bootstrapped over
// MPI, each rank on GPU local_rank % device count), a clear error when this build lacks
// them. timeout_s arms the collectives' watchdog (NCCL: aborts the communicator and throws).
// For signal handlers (async-signal-safe): when this process is blocked in a collective,
// writes "meap: rank R: SIGNAL arrived while waiting in collective 'NAME'..." to stderr, so
// a job that mpirun stops after a rank died says which collective could not complete.
void report_collective_in_flight(const char* signal_name);

std::unique_ptr<Communicator> make_communicator(double timeout_s, Device buffers = Device::cpu);

}  // namespace meap
