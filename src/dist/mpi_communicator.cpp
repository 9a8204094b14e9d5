// MpiCommunicator: collectives over host buffers with MPI (the CPU backend's data
// parallelism), each one under the watchdog.
#ifdef MEAP_WITH_MPI

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "local_communicator.hpp"
#include "meap/core/error.hpp"
#include "watchdog.hpp"
#include "mpi_check.hpp"


namespace meap {

namespace {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s)
      : watchdog_(timeout_s, [this, timeout_s](const std::string& what) {
          abort_on_collective_timeout(rank_, what, timeout_s);
        }) {
    int initialized = 0;
    MEAP_MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      int provided = 0;
      MEAP_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      owns_mpi_ = true;
    }
    MEAP_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MEAP_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MEAP_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    watchdog_.set_rank(rank_);
    // A test hook: a small MEAP_MPI_MAX_COUNT makes the tests run the sliced paths that
    // otherwise only buffers of more than 2^30 elements take.
    if (const char* v = std::getenv("MEAP_MPI_MAX_COUNT")) {
      const long long x = std::atoll(v);
      if (x < 1 || x > INT_MAX) fail("MEAP_MPI_MAX_COUNT='", v, "' must be in [1, ", INT_MAX, "]");
      max_count_ = x;
    }
  }

  ~MpiCommunicator() override {
    // Destroyed by an error that may be this rank's alone (its disk, its log file): the
    // other ranks wait in a collective, and MPI_Finalize would wait for them, so the job
    // would hang until their watchdogs fire (dist.timeout_s). Leaving without finalizing
    // instead makes mpirun end the whole job as soon as this process exits non-zero.
    if (owns_mpi_ && std::uncaught_exceptions() > 0 && size_ > 1) return;
    if (owns_mpi_) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void all_reduce_sum(const Tensor& t, const char* what) override {
    MEAP_CHECK(t.device == Device::cpu, "MPI collectives take host buffers");
    MEAP_CHECK(t.dtype == DType::f32 || t.dtype == DType::f64, "all-reduce of ",
               dtype_name(t.dtype));
    const MPI_Datatype type = t.dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
    CollectiveWatchdog::Armed armed(watchdog_, what);
    // MPI counts are ints: large buffers go in slices.
    char* p = static_cast<char*>(t.data);
    for (int64_t done = 0, n = t.numel(); done < n; done += max_count_) {
      const int count = static_cast<int>(std::min(max_count_, n - done));
      MEAP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + done * dtype_size(t.dtype), count, type,
                                   MPI_SUM, MPI_COMM_WORLD));
    }
  }

  void set_producer_stream(void* stream) override {
    MEAP_CHECK(stream == nullptr, "MPI reduces host buffers: there is no device stream to wait on");
  }

  void all_reduce_sum_start(const Tensor& t, const char* what) override {
    check_host(t, what);
    MEAP_CHECK(t.dtype == DType::f32 || t.dtype == DType::f64, "all-reduce of ",
               dtype_name(t.dtype));
    const MPI_Datatype type = t.dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
    char* p = static_cast<char*>(t.data);
    for (int64_t done = 0, n = t.numel(); done < n; done += max_count_) {
      const int count = static_cast<int>(std::min(max_count_, n - done));
      MPI_Request r;
      MEAP_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p + done * dtype_size(t.dtype), count, type,
                                    MPI_SUM, MPI_COMM_WORLD, &r));
      pending_.push_back(r);
    }
    // MPI moves non-blocking collectives on only inside MPI calls: poke the earlier ones.
    int all_done = 0;
    MEAP_MPI_CHECK(MPI_Testall(static_cast<int>(pending_.size()), pending_.data(), &all_done,
                               MPI_STATUSES_IGNORE));
  }

  void wait_started(const char* what) override {
    if (pending_.empty()) return;
    CollectiveWatchdog::Armed armed(watchdog_, what);
    MEAP_MPI_CHECK(MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(),
                               MPI_STATUSES_IGNORE));
    pending_.clear();
  }

  void all_reduce_sum(double* values, int n, const char* what) override {
    CollectiveWatchdog::Armed armed(watchdog_, what);
    MEAP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  }

  void reduce_scatter_sum(const Tensor& full, const Tensor& shard, const char* what) override {
    check_host(full, what);
    check_host(shard, what);
    check_shard_shapes(full, shard, size_, what);
    const MPI_Datatype type = full.dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
    const size_t es = dtype_size(full.dtype);
    const int64_t S = shard.numel();
    char* in = static_cast<char*>(full.data);
    char* out = static_cast<char*>(shard.data);
    const bool in_place = out == in;  // the result lands in full's first S elements
    MEAP_CHECK(in_place || out + S * es <= in || in + full.nbytes() <= out, what,
               ": the shard overlaps the full buffer other than at its start");
    CollectiveWatchdog::Armed armed(watchdog_, what);
    if (S <= max_count_) {
      MEAP_MPI_CHECK(MPI_Reduce_scatter_block(in_place ? MPI_IN_PLACE : in, out,
                                              static_cast<int>(S), type, MPI_SUM,
                                              MPI_COMM_WORLD));
      return;
    }
    // A shard beyond an int count: each rank's shard is reduced to it in slices (the same
    // sum, world_size reductions instead of one reduce-scatter). In place, root 0 goes first:
    // its result overwrites block 0, which no later root reads.
    for (int root = 0; root < size_; ++root)
      for (int64_t done = 0; done < S; done += max_count_) {
        const int count = static_cast<int>(std::min(max_count_, S - done));
        char* block = in + (root * S + done) * es;
        const bool mine = root == rank_;
        MEAP_MPI_CHECK(MPI_Reduce(mine && in_place && root == 0 ? MPI_IN_PLACE : block,
                                  mine ? out + done * es : nullptr, count, type, MPI_SUM, root,
                                  MPI_COMM_WORLD));
      }
  }

  void all_gather(const Tensor& shard, const Tensor& full, const char* what) override {
    check_host(full, what);
    check_host(shard, what);
    check_shard_shapes(full, shard, size_, what);
    const MPI_Datatype type = full.dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
    const size_t es = dtype_size(full.dtype);
    const int64_t S = shard.numel();
    char* all = static_cast<char*>(full.data);
    char* mine = all + rank_ * S * es;
    const bool in_place = shard.data == mine;
    MEAP_CHECK(in_place || static_cast<char*>(shard.data) + S * es <= all ||
                   all + full.nbytes() <= static_cast<char*>(shard.data),
               what, ": the shard overlaps the full buffer at another rank's place");
    CollectiveWatchdog::Armed armed(watchdog_, what);
    if (S <= max_count_) {
      MEAP_MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : shard.data, static_cast<int>(S),
                                   type, all, static_cast<int>(S), type, MPI_COMM_WORLD));
      return;
    }
    // Beyond an int count: each rank broadcasts its shard in slices.
    if (!in_place) std::memcpy(mine, shard.data, S * es);
    for (int root = 0; root < size_; ++root)
      for (int64_t done = 0; done < S; done += max_count_) {
        const int count = static_cast<int>(std::min(max_count_, S - done));
        MEAP_MPI_CHECK(MPI_Bcast(all + (root * S + done) * es, count, type, root,
                                 MPI_COMM_WORLD));
      }
  }

  void broadcast(const Tensor& t, int root, const char* what) override {
    check_host(t, what);
    MEAP_CHECK(root >= 0 && root < size_, what, ": broadcast root ", root, " is not a rank of ",
               size_);
    CollectiveWatchdog::Armed armed(watchdog_, what);
    // As bytes, in int-sized slices.
    char* p = static_cast<char*>(t.data);
    for (int64_t done = 0, n = static_cast<int64_t>(t.nbytes()); done < n; done += max_count_) {
      const int count = static_cast<int>(std::min(max_count_, n - done));
      MEAP_MPI_CHECK(MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD));
    }
  }

  void barrier(const char* what) override {
    CollectiveWatchdog::Armed armed(watchdog_, what);
    MEAP_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  }

 private:
  static void check_host(const Tensor& t, const char* what) {
    MEAP_CHECK(t.device == Device::cpu, what, ": MPI collectives take host buffers");
  }

  CollectiveWatchdog watchdog_;
  std::vector<MPI_Request> pending_;  // started, not yet waited for (completed ones are null)
  int rank_ = 0, size_ = 1;
  int64_t max_count_ = int64_t{1} << 30;  // elements per MPI call (counts are ints)
  bool owns_mpi_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

}  // namespace meap

#endif  // MEAP_WITH_MPI
