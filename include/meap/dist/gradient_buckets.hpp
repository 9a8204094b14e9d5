// GradientBuckets: data parallelism's gradient all-reduce in buckets, started while the
// backward is still running (Llama::backward reports each layer's flat range as soon as its
// gradients are final), so communication overlaps the remaining layers' compute, as
// PyTorch DDP does. Ranges arrive from the end of the flat buffer towards its start; they
// are gathered into buckets of at least bucket_elems before an all-reduce starts.
#pragma once

#include <cstdint>

#include "meap/dist/communicator.hpp"
#include "meap/core/tensor.hpp"

namespace meap {

class GradientBuckets {
 public:
  // grads: the flat gradient buffer (on a device, the communicator's producer stream orders
  // the reductions after the backward's kernels).
  GradientBuckets(Communicator& comm, const Tensor& grads, int64_t bucket_elems);

  // The backward finished [begin, end): end must be where the previous range began.
  void ready(int64_t begin, int64_t end);
  // Starts what is left and waits for every bucket; throws unless the ranges covered the
  // whole buffer. Resets for the next step.
  void finish();
  int64_t buckets_started() const { return buckets_; }

 private:
  void start(int64_t begin, int64_t end);

  Communicator& comm_;
  Tensor grads_;
  int64_t bucket_elems_;
  int64_t lo_, hi_;    // [lo_, hi_): ready, not yet started
  int64_t covered_ = 0;
  int64_t buckets_ = 0;
};

}  // namespace meap
