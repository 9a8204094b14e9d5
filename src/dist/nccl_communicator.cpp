// NcclCommunicator: the collectives over device buffers, on a non-blocking NCCL communicator
// and a stream of its own. The host waits for each collective by polling the stream and
// NCCL's async error, so a dead or hung peer ends in ncclCommAbort and a meap::Error after
// dist.timeout_s rather than a hang. Host doubles and the barrier go over MPI (see below).
#if defined(MEAP_WITH_NCCL) && defined(MEAP_WITH_MPI)

#include "nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "cuda_check.hpp"
#include "local_communicator.hpp"
#include "meap/core/error.hpp"
#include "watchdog.hpp"
#include "mpi_check.hpp"

// NCCL's own words on its last error (the communicator argument is unused today).
static const char* meap_nccl_last_error(ncclComm_t comm) {
  const char* m = ncclGetLastError(comm);
  return m && *m ? m : "no further detail";
}

// Every NCCL call. On a non-blocking communicator a call may answer ncclInProgress: it has
// started, and its completion (or failure) shows later through ncclCommGetAsyncError, which
// the waits below poll -- so ncclInProgress is not an error here.
#define MEAP_NCCL_CHECK(call)                                                             \
  do {                                                                                    \
    const ncclResult_t meap_nccl_rc_ = (call);                                            \
    if (meap_nccl_rc_ != ncclSuccess && meap_nccl_rc_ != ncclInProgress)                  \
      ::meap::fail("NCCL error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",        \
                   ncclGetErrorString(meap_nccl_rc_), " (",                               \
                   meap_nccl_last_error(nullptr), ")");                         \
  } while (0)


namespace meap {

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);

namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType d, const char* what) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    default: fail(what, ": NCCL collectives take f32, f64 or bf16 buffers, not ", dtype_name(d));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(double timeout_s, const RankInfo& info)
      : timeout_s_(timeout_s), rank_(info.rank), size_(info.world_size) {
    MEAP_CHECK(size_ >= 1 && rank_ >= 0 && rank_ < size_, "rank ", rank_, " of ", size_);
    MEAP_CHECK(timeout_s_ > 0, "dist.timeout_s must be positive");
    CollectiveWatchdog::set_rank(rank_);
    // The host side. Several ranks: MPI, which also carries NCCL's unique id (MPI starts here,
    // exactly as the MPI communicator starts it, and ends when host_ goes, after NCCL). One
    // rank: nothing to exchange, and no MPI singleton start-up to depend on.
    if (size_ > 1) {
      host_ = make_mpi_communicator(timeout_s);
      if (host_->world_size() != size_ || host_->rank() != rank_)
        fail("MPI reports rank ", host_->rank(), " of ", host_->world_size(), " but the ",
             info.launcher, " environment says ", rank_, " of ", size_);
    } else {
      host_ = std::make_unique<LocalCommunicator>();
    }

    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();
      fail("rank ", rank_, ": the NCCL communicator needs a CUDA GPU, but none is visible (",
           e == cudaSuccess ? "no device" : cudaGetErrorString(e),
           "); check the driver and CUDA_VISIBLE_DEVICES");
    }
    device_ = info.local_rank % count;
    MEAP_CUDA_CHECK(cudaSetDevice(device_));

    ncclUniqueId id{};
    if (rank_ == 0) MEAP_NCCL_CHECK(ncclGetUniqueId(&id));
    if (size_ > 1) {
      // A rank that died before the broadcast would hang the others: the same watchdog as
      // every MPI collective ends the process.
      CollectiveWatchdog dog(timeout_s_, [this](const std::string& what) {
        abort_on_collective_timeout(rank_, what, timeout_s_);
      });
      CollectiveWatchdog::Armed armed(dog, "NCCL unique id broadcast");
      MEAP_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
    }

    try {
      // A blocking stream (not cudaStreamNonBlocking): work queued on the legacy default
      // stream (plain cudaMemcpy) is ordered before our collectives; the backend's own
      // stream is waited for through set_producer_stream.
      MEAP_CUDA_CHECK(cudaStreamCreate(&stream_));
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      MEAP_NCCL_CHECK(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config));
      wait_state("NCCL init");
    } catch (...) {
      release_after_failure();
      throw;
    }
  }

  ~NcclCommunicator() override {
    // Never throws. Finalize flushes and quiesces (non-blocking: poll it, within the
    // timeout); a communicator that fails or outlives it is aborted instead.
    try {
      if (comm_ && !aborted_) {
        cudaSetDevice(device_);
        const ncclResult_t fin = ncclCommFinalize(comm_);
        bool clean = fin == ncclSuccess || fin == ncclInProgress;
        const auto deadline = deadline_from_now();
        ncclResult_t st = ncclInProgress;
        for (int spins = 0; clean; ++spins) {
          if (ncclCommGetAsyncError(comm_, &st) != ncclSuccess) clean = false;
          else if (st != ncclInProgress) break;
          else if (Clock::now() > deadline) clean = false;
          else pause(spins);
        }
        if (clean && st == ncclSuccess) ncclCommDestroy(comm_);
        else ncclCommAbort(comm_);
        comm_ = nullptr;
      }
      if (stream_) cudaStreamDestroy(stream_);
      stream_ = nullptr;
      if (ready_event_) cudaEventDestroy(ready_event_);
      ready_event_ = nullptr;
    } catch (...) {
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  void all_reduce_sum(const Tensor& t, const char* what) override {
    check_device(t, what);
    const ncclDataType_t type = nccl_type(t.dtype, what);
    if (t.numel() == 0) return;
    usable(what);
    MEAP_CUDA_CHECK(cudaSetDevice(device_));
    after_producer();
    const auto deadline = deadline_from_now();
    MEAP_NCCL_CHECK(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), type, ncclSum,
                                  comm_, stream_));
    wait_collective(what, deadline);
  }

  void set_producer_stream(void* stream) override {
    producer_ = static_cast<cudaStream_t>(stream);
  }

  void all_reduce_sum_start(const Tensor& t, const char* what) override {
    check_device(t, what);
    const ncclDataType_t type = nccl_type(t.dtype, what);
    if (t.numel() == 0) return;
    usable(what);
    MEAP_CUDA_CHECK(cudaSetDevice(device_));
    after_producer();
    started_ = true;
    MEAP_NCCL_CHECK(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), type, ncclSum,
                                  comm_, stream_));
    // A non-blocking communicator takes the next call only once this one is enqueued.
    wait_collective(what, deadline_from_now(), /*enqueued_only=*/true);
  }

  // The deadline starts here, not at the first start: the backward's compute in between is
  // no sign of a dead peer.
  void wait_started(const char* what) override {
    if (!started_) return;
    started_ = false;
    wait_collective(what, deadline_from_now());
  }

  // The few host doubles (loss sums, token weights, the stop vote) go over MPI, already up
  // for the bootstrap: a device round trip (copy in, NCCL, copy out, sync) for 3 numbers
  // would only add CUDA calls that can fail, and the MPI path has its watchdog.
  void all_reduce_sum(double* values, int n, const char* what) override {
    host_->all_reduce_sum(values, n, what);
  }

  void reduce_scatter_sum(const Tensor& full, const Tensor& shard, const char* what) override {
    check_device(full, what);
    check_device(shard, what);
    check_shards(full, shard, what);
    const ncclDataType_t type = nccl_type(full.dtype, what);
    const size_t es = dtype_size(full.dtype);
    const int64_t S = shard.numel();
    if (S == 0) return;
    char* in = static_cast<char*>(full.data);
    char* out = static_cast<char*>(shard.data);
    // Our in-place convention is MPI's (the result lands in full's first S elements); NCCL's
    // in-place form puts it at full + rank * S. So in place, reduce there and move it down
    // (rank 0: already there); the two ranges are disjoint for rank >= 1.
    const bool in_place = out == in;
    MEAP_CHECK(in_place || out + S * es <= in || in + full.nbytes() <= out, what,
               ": the shard overlaps the full buffer other than at its start");
    usable(what);
    MEAP_CUDA_CHECK(cudaSetDevice(device_));
    char* target = in_place ? in + rank_ * S * es : out;
    after_producer();
    const auto deadline = deadline_from_now();
    MEAP_NCCL_CHECK(ncclReduceScatter(in, target, static_cast<size_t>(S), type, ncclSum, comm_,
                                      stream_));
    if (in_place && rank_ != 0) {
      // A non-blocking call may return before its kernel is on the stream: the copy must
      // queue behind it, so wait for the enqueue first.
      wait_collective(what, deadline, /*enqueued_only=*/true);
      const cudaError_t e = cudaMemcpyAsync(out, target, S * es, cudaMemcpyDeviceToDevice, stream_);
      if (e != cudaSuccess) {
        cudaGetLastError();
        abort_comm();
        fail("rank ", rank_, ": collective '", what, "': moving the shard down failed: ",
             cudaGetErrorString(e), "; NCCL communicator aborted");
      }
    }
    wait_collective(what, deadline);
  }

  void all_gather(const Tensor& shard, const Tensor& full, const char* what) override {
    check_device(full, what);
    check_device(shard, what);
    check_shards(full, shard, what);
    const ncclDataType_t type = nccl_type(full.dtype, what);
    const size_t es = dtype_size(full.dtype);
    const int64_t S = shard.numel();
    if (S == 0) return;
    char* all = static_cast<char*>(full.data);
    char* mine = all + rank_ * S * es;
    // NCCL's in-place all-gather (send buffer = full + rank * S) is exactly ours.
    const bool in_place = shard.data == mine;
    MEAP_CHECK(in_place || static_cast<char*>(shard.data) + S * es <= all ||
                   all + full.nbytes() <= static_cast<char*>(shard.data),
               what, ": the shard overlaps the full buffer at another rank's place");
    usable(what);
    MEAP_CUDA_CHECK(cudaSetDevice(device_));
    after_producer();
    const auto deadline = deadline_from_now();
    MEAP_NCCL_CHECK(ncclAllGather(shard.data, all, static_cast<size_t>(S), type, comm_, stream_));
    wait_collective(what, deadline);
  }

  void broadcast(const Tensor& t, int root, const char* what) override {
    check_device(t, what);
    MEAP_CHECK(root >= 0 && root < size_, what, ": broadcast root ", root, " is not a rank of ",
               size_);
    if (t.nbytes() == 0) return;
    usable(what);
    MEAP_CUDA_CHECK(cudaSetDevice(device_));
    after_producer();
    const auto deadline = deadline_from_now();
    MEAP_NCCL_CHECK(ncclBroadcast(t.data, t.data, t.nbytes(), ncclUint8, root, comm_, stream_));
    wait_collective(what, deadline);
  }

  // Every device collective has completed when its call returns, so a barrier has only the
  // ranks to line up: MPI's, under its watchdog.
  void barrier(const char* what) override { host_->barrier(what); }

 private:
  static void check_device(const Tensor& t, const char* what) {
    MEAP_CHECK(t.device == Device::cuda, what, ": NCCL collectives take device buffers");
  }

  void check_shards(const Tensor& full, const Tensor& shard, const char* what) const {
    MEAP_CHECK(full.dtype == shard.dtype, what, ": shard collectives take buffers of one dtype");
    MEAP_CHECK(full.numel() == shard.numel() * size_, what, ": full buffer of ", full.numel(),
               " elements is not ", size_, " shards of ", shard.numel());
  }

  // Queues a wait on the producer stream's work so far: the collective reads what the
  // backend's kernels wrote, without the host waiting for them.
  void after_producer() {
    if (!producer_) return;
    if (!ready_event_)
      MEAP_CUDA_CHECK(cudaEventCreateWithFlags(&ready_event_, cudaEventDisableTiming));
    MEAP_CUDA_CHECK(cudaEventRecord(ready_event_, producer_));
    MEAP_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_event_, 0));
  }

  void usable(const char* what) const {
    if (aborted_)
      fail(what, ": the NCCL communicator was aborted after an earlier failure; restart the "
                 "job (from the last checkpoint)");
  }

  Clock::time_point deadline_from_now() const {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeout_s_));
  }

  // Short waits first (a small collective finishes in microseconds), then 100 us sleeps,
  // so a long all-reduce does not burn a core.
  static void pause(int spins) {
    if (spins < 1000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }

  void abort_comm() {
    if (comm_ && !aborted_) ncclCommAbort(comm_);
    comm_ = nullptr;
    aborted_ = true;
  }

  void release_after_failure() noexcept {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
    aborted_ = true;
  }

  // Init (and nothing queued on the stream): wait until NCCL's state leaves ncclInProgress.
  void wait_state(const char* what) {
    const CollectiveInFlight in_flight(what);
    const auto deadline = deadline_from_now();
    for (int spins = 0;; ++spins) {
      ncclResult_t st = ncclSuccess;
      MEAP_NCCL_CHECK(ncclCommGetAsyncError(comm_, &st));
      if (st == ncclSuccess) return;
      if (st != ncclInProgress) {
        const std::string detail = meap_nccl_last_error(comm_);
        abort_comm();
        fail("rank ", rank_, ": ", what, " failed: ", ncclGetErrorString(st), " (", detail,
             "); NCCL_DEBUG=INFO tells more");
      }
      if (Clock::now() > deadline) {
        abort_comm();
        fail("rank ", rank_, ": ", what, " did not complete within ", timeout_s_,
             " s (dist.timeout_s): another rank died, hangs or cannot be reached (check "
             "NCCL_SOCKET_IFNAME; NCCL_DEBUG=INFO tells more); communicator aborted");
      }
      pause(spins);
    }
  }

  // A queued collective: done when NCCL's state is no longer in progress (the enqueue has
  // finished) and, unless enqueued_only, the stream has drained; an NCCL error or the
  // deadline aborts.
  void wait_collective(const char* what, Clock::time_point deadline, bool enqueued_only = false) {
    const CollectiveInFlight in_flight(what);
    for (int spins = 0;; ++spins) {
      ncclResult_t st = ncclSuccess;
      const ncclResult_t rc = ncclCommGetAsyncError(comm_, &st);
      if (rc != ncclSuccess) st = rc;
      if (st != ncclSuccess && st != ncclInProgress) {
        const std::string detail = meap_nccl_last_error(comm_);
        abort_comm();
        fail("rank ", rank_, ": collective '", what, "' failed: ", ncclGetErrorString(st), " (",
             detail, "); NCCL communicator aborted");
      }
      if (st == ncclSuccess) {
        if (enqueued_only) return;
        const cudaError_t q = cudaStreamQuery(stream_);
        if (q == cudaSuccess) return;
        if (q != cudaErrorNotReady) {
          cudaGetLastError();
          abort_comm();
          fail("rank ", rank_, ": collective '", what, "' failed on the GPU: ",
               cudaGetErrorString(q), "; NCCL communicator aborted");
        }
      }
      if (Clock::now() > deadline) {
        abort_comm();
        fail("rank ", rank_, ": collective '", what, "' did not complete within ", timeout_s_,
             " s (dist.timeout_s): another rank died or hangs; NCCL communicator aborted");
      }
      pause(spins);
    }
  }

  double timeout_s_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<Communicator> host_;  // declared first: ends (MPI_Finalize) after NCCL
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaStream_t producer_ = nullptr;    // the backend's stream (set_producer_stream)
  cudaEvent_t ready_event_ = nullptr;  // the producer's point a collective waits for
  bool started_ = false;               // all_reduce_sum_start calls not yet waited for
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s, const RankInfo& info) {
  return std::make_unique<NcclCommunicator>(timeout_s, info);
}

}  // namespace meap

#endif  // MEAP_WITH_NCCL && MEAP_WITH_MPI
