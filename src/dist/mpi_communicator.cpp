// MpiCommunicator: collectives over host buffers with MPI (the CPU backend's data
// parallelism), each one under the watchdog.
#ifdef MEAP_WITH_MPI

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "local_communicator.hpp"
#include "meap/error.hpp"
#include "watchdog.hpp"

#define MEAP_MPI_CHECK(call)                                                   \
  do {                                                                         \
    const int meap_mpi_rc_ = (call);                                           \
    if (meap_mpi_rc_ != MPI_SUCCESS) {                                         \
      char meap_mpi_msg_[MPI_MAX_ERROR_STRING];                                \
      int meap_mpi_len_ = 0;                                                   \
      MPI_Error_string(meap_mpi_rc_, meap_mpi_msg_, &meap_mpi_len_);           \
      ::meap::fail("MPI error in ", #call, ": ", meap_mpi_msg_);               \
    }                                                                          \
  } while (0)

namespace meap {

namespace {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s)
      : watchdog_(timeout_s, [this, timeout_s](const std::string& what) {
          std::fprintf(stderr,
                       "meap: rank %d: collective '%s' did not complete within %.0f s "
                       "(dist.timeout_s): another rank died or hangs; aborting\n",
                       rank_, what.c_str(), timeout_s);
          std::fflush(stderr);
          std::_Exit(1);
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
  }

  ~MpiCommunicator() override {
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
    constexpr int64_t kSlice = int64_t{1} << 30;
    char* p = static_cast<char*>(t.data);
    for (int64_t done = 0, n = t.numel(); done < n; done += kSlice) {
      const int count = static_cast<int>(std::min(kSlice, n - done));
      MEAP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + done * dtype_size(t.dtype), count, type,
                                   MPI_SUM, MPI_COMM_WORLD));
    }
  }

  void all_reduce_sum(double* values, int n, const char* what) override {
    CollectiveWatchdog::Armed armed(watchdog_, what);
    MEAP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  }

  void barrier(const char* what) override {
    CollectiveWatchdog::Armed armed(watchdog_, what);
    MEAP_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  }

 private:
  CollectiveWatchdog watchdog_;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

}  // namespace meap

#endif  // MEAP_WITH_MPI
