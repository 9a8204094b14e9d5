#include "meap/dist/gradient_buckets.hpp"

#include "meap/core/error.hpp"

namespace meap {

GradientBuckets::GradientBuckets(Communicator& comm, const Tensor& grads, int64_t bucket_elems)
    : comm_(comm), grads_(grads), bucket_elems_(bucket_elems), lo_(grads.numel()),
      hi_(grads.numel()) {
  MEAP_CHECK(bucket_elems > 0, "gradient bucket of ", bucket_elems, " elements");
}

void GradientBuckets::ready(int64_t begin, int64_t end) {
  MEAP_CHECK(end == lo_ && begin <= end && begin >= 0, "gradient range [", begin, ", ", end,
             ") does not end where the previous one began (", lo_, ")");
  lo_ = begin;
  if (hi_ - lo_ >= bucket_elems_) {
    start(lo_, hi_);
    hi_ = lo_;
  }
}

void GradientBuckets::finish() {
  if (hi_ > lo_) start(lo_, hi_);
  comm_.wait_started("gradient bucket all-reduce");
  const int64_t covered = covered_;
  lo_ = hi_ = grads_.numel();
  covered_ = 0;
  MEAP_CHECK(covered == grads_.numel(), "gradient buckets covered ", covered, " of ",
             grads_.numel(), " elements");
}

void GradientBuckets::start(int64_t begin, int64_t end) {
  comm_.all_reduce_sum_start(grads_.rows(begin, end), "gradient bucket all-reduce");
  covered_ += end - begin;
  ++buckets_;
}

}  // namespace meap
