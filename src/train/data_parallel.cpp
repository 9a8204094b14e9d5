#include "meap/train/data_parallel.hpp"

#include <algorithm>

#include "meap/core/error.hpp"
#include "meap/dist/gradient_buckets.hpp"

namespace meap {

namespace {

class Replicated final : public DataParallel {
 public:
  Replicated(const DistConfig& dist, Communicator& comm, Llama& model, Backend& backend)
      : comm_(comm), backend_(backend), grads_(model.flat_gradients()), bucket_mb_(dist.bucket_mb) {
    if (comm.world_size() > 1 && dist.bucket_mb > 0) {
      const auto bucket_elems = std::max<int64_t>(
          1, static_cast<int64_t>(dist.bucket_mb * 1024 * 1024 / dtype_size(grads_.dtype)));
      buckets_ = std::make_unique<GradientBuckets>(comm, grads_, bucket_elems);
    }
  }

  ShardRange owned() const override { return {0, grads_.numel()}; }
  bool sharded() const override { return false; }
  std::string describe() const override { return "replicated on every rank"; }

  Llama::GradientsReady backward_hook() override {
    if (!buckets_) return {};
    return [this](int64_t begin, int64_t end) { buckets_->ready(begin, end); };
  }

  Tensor reduce_gradients(double& sq_norm) override {
    if (buckets_) buckets_->finish();
    else comm_.all_reduce_sum(grads_, "gradient all-reduce");
    sq_norm = backend_.sum_squares(grads_);
    return grads_;
  }

  void share_weights() override {}  // every rank applied the same update

  std::string first_step_report() const override {
    if (!buckets_) return {};
    // tests/mpi parses this line.
    return str_cat("gradient all-reduce: ", buckets_->buckets_started(),
                   " buckets per step (dist.bucket_mb ", bucket_mb_,
                   "), started during the backward");
  }

 private:
  Communicator& comm_;
  Backend& backend_;
  Tensor grads_;
  double bucket_mb_;
  std::unique_ptr<GradientBuckets> buckets_;
};

class Zero1 final : public DataParallel {
 public:
  Zero1(Communicator& comm, Llama& model, Backend& backend)
      : comm_(comm),
        model_(model),
        backend_(backend),
        grads_(model.flat_gradients()),
        owned_(shard_range(model.flat_master().numel(), comm.rank(), comm.world_size())),
        // The reduce-scatter runs in place: this rank's summed shard lands in the first
        // owned.length elements of the gradient buffer (the rest is scratch until the next
        // zero_grad), so no gradient-shard buffer is needed.
        grad_shard_(grads_.rows(0, owned_.length)) {}

  ShardRange owned() const override { return owned_; }
  bool sharded() const override { return true; }
  std::string describe() const override {
    return str_cat("ZeRO-1 shard ", comm_.rank() + 1, " of ", comm_.world_size());
  }

  Llama::GradientsReady backward_hook() override { return {}; }

  Tensor reduce_gradients(double& sq_norm) override {
    comm_.reduce_scatter_sum(grads_, grad_shard_, "gradient reduce-scatter");
    sq_norm = backend_.sum_squares(grad_shard_);
    comm_.all_reduce_sum(&sq_norm, 1, "gradient norm");  // a sum over the shards
    return grad_shard_;
  }

  void share_weights() override {
    const Tensor master = model_.flat_master();
    comm_.all_gather(master.rows(owned_.begin, owned_.end()), master, "parameter all-gather");
    model_.sync_working_copy();  // the bf16 working copy follows the gathered master
  }

 private:
  Communicator& comm_;
  Llama& model_;
  Backend& backend_;
  Tensor grads_;
  ShardRange owned_;
  Tensor grad_shard_;
};

}  // namespace

int64_t zero1_flat_multiple(const DistConfig& dist, const Communicator& comm) {
  return dist.zero1 ? comm.world_size() * kZeroShardAlign : 1;
}

std::unique_ptr<DataParallel> make_data_parallel(const DistConfig& dist, Communicator& comm,
                                                 Llama& model, Backend& backend) {
  if (dist.zero1) return std::make_unique<Zero1>(comm, model, backend);
  return std::make_unique<Replicated>(dist, comm, model, backend);
}

}  // namespace meap
