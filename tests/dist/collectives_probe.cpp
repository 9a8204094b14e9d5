// Runs under `mpirun -np N` (tests/mpi/test_mpi_collectives.cpp): every rank checks the
// host collectives' results against what they must be, and exits non-zero on the first
// mismatch. With MEAP_MPI_MAX_COUNT small, the sliced paths run.
#include <cstdio>
#include <vector>

#include "meap/dist/communicator.hpp"
#include "meap/core/error.hpp"

namespace {

int failures = 0;

void expect(bool ok, const char* what, int rank) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: %s: wrong result\n", rank, what);
    ++failures;
  }
}

}  // namespace

int main() {
  try {
    auto comm = meap::make_communicator(30.0);
    const int rank = comm->rank(), world = comm->world_size();
    const int64_t n = 1001;  // odd, so slices end unevenly

    for (int root = 0; root < world; ++root) {
      std::vector<float> f(n);
      for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(rank * 10000 + i);
      comm->broadcast(meap::Tensor(f.data(), meap::DType::f32, meap::Device::cpu, {n}), root,
                      "broadcast f32");
      bool ok = true;
      for (int64_t i = 0; i < n; ++i) ok &= f[i] == static_cast<float>(root * 10000 + i);
      expect(ok, "broadcast f32", rank);

      std::vector<uint16_t> h(n, static_cast<uint16_t>(rank + 1));  // bf16 bit patterns
      comm->broadcast(meap::Tensor(h.data(), meap::DType::bf16, meap::Device::cpu, {n}), root,
                      "broadcast bf16");
      bool ok16 = true;
      for (uint16_t x : h) ok16 &= x == root + 1;
      expect(ok16, "broadcast bf16", rank);
    }

    std::vector<double> d(n);
    for (int64_t i = 0; i < n; ++i) d[i] = rank + 0.5 * i;
    comm->all_reduce_sum(meap::Tensor(d.data(), meap::DType::f64, meap::Device::cpu, {n}),
                         "all-reduce f64");
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= d[i] == world * (world - 1) / 2.0 + world * 0.5 * i;
    expect(ok, "all-reduce f64", rank);

    comm->barrier("probe end");
    if (rank == 0 && failures == 0) std::printf("collectives ok on %d ranks\n", world);
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "collectives_probe: %s\n", e.what());
    return 2;
  }
}
