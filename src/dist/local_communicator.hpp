// LocalCommunicator: a job of one process; every collective is the identity (the
// reduce-scatter and all-gather of one shard are a copy when the buffers differ).
#pragma once

#include <cstring>

#include "meap/dist/communicator.hpp"

namespace meap {

// Checks shared by every communicator's reduce-scatter / all-gather: the shard is
// 1 / world_size of the full buffer, both f32 or both f64.
inline void check_shard_shapes(const Tensor& full, const Tensor& shard, int world_size,
                               const char* what) {
  MEAP_CHECK(full.dtype == shard.dtype && (full.dtype == DType::f32 || full.dtype == DType::f64),
             what, ": shard collectives take f32 or f64 buffers of one dtype");
  MEAP_CHECK(full.numel() == shard.numel() * world_size, what, ": full buffer of ",
             full.numel(), " elements is not ", world_size, " shards of ", shard.numel());
}

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string name() const override { return "local"; }
  void all_reduce_sum(const Tensor&, const char*) override {}
  void all_reduce_sum(double*, int, const char*) override {}
  void reduce_scatter_sum(const Tensor& full, const Tensor& shard, const char* what) override {
    copy(full, shard, what);
  }
  void all_gather(const Tensor& shard, const Tensor& full, const char* what) override {
    copy(shard, full, what);
  }
  void all_reduce_sum_start(const Tensor&, const char*) override {}
  void wait_started(const char*) override {}
  void broadcast(const Tensor&, int root, const char* what) override {
    MEAP_CHECK(root == 0, what, ": broadcast from rank ", root, " in a job of one process");
  }
  void barrier(const char*) override {}

 private:
  // One shard is the whole buffer: a host copy (the CPU backend's buffers) unless aliased.
  static void copy(const Tensor& from, const Tensor& to, const char* what) {
    check_shard_shapes(from, to, 1, what);
    if (from.data == to.data) return;
    MEAP_CHECK(from.device == Device::cpu && to.device == Device::cpu, what,
               ": the local communicator copies host buffers only");
    std::memmove(to.data, from.data, from.nbytes());
  }
};

}  // namespace meap
