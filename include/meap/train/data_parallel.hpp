// DataParallel: how the ranks' gradients of one step become one update. Two strategies:
//  - replicated (plain data parallelism, as DDP): all-reduce of the whole gradient (in
//    buckets overlapped with the backward when dist.bucket_mb > 0); every rank keeps all
//    AdamW moments and updates every weight;
//  - ZeRO-1 (dist.zero1): reduce-scatter, so each rank holds the summed gradient of its
//    shard only, updates that shard with its shard of the moments, then all-gathers the
//    weights.
// Both run over the Communicator (MPI host buffers or NCCL device buffers).
#pragma once

#include <memory>
#include <string>

#include "meap/dist/communicator.hpp"
#include "meap/dist/dist_config.hpp"
#include "meap/model/llama.hpp"
#include "meap/train/zero.hpp"

namespace meap {

class DataParallel {
 public:
  virtual ~DataParallel() = default;

  // The flat range whose optimizer state this rank keeps and updates.
  virtual ShardRange owned() const = 0;
  // True when each rank's moments are a shard (checkpoints then gather them per rank).
  virtual bool sharded() const = 0;
  // What the log's start-up line says about it.
  virtual std::string describe() const = 0;

  // Passed to the last micro-batch's backward: starts bucketed reductions while the
  // backward goes on (empty when there is nothing to overlap).
  virtual Llama::GradientsReady backward_hook() = 0;
  // After the backward: the summed gradient of owned() (a view into the model's gradient
  // buffer) and the global sum of squares of the whole summed gradient in `sq_norm`.
  virtual Tensor reduce_gradients(double& sq_norm) = 0;
  // After owned() was updated: every rank's weights whole again.
  virtual void share_weights() = 0;
  // A line for the log once the first step has shown how the reduction ran ("" for none).
  virtual std::string first_step_report() const { return {}; }
};

// dist.zero1 picks ZeRO-1, else replicated. The model must have been built with
// flat_multiple = zero1_flat_multiple(dist, comm) so that shards are equal and aligned.
std::unique_ptr<DataParallel> make_data_parallel(const DistConfig& dist, Communicator& comm,
                                                 Llama& model, Backend& backend);
int64_t zero1_flat_multiple(const DistConfig& dist, const Communicator& comm);

}  // namespace meap
