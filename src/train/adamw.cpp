#include "meap/train/adamw.hpp"

namespace meap {

namespace {

size_t moment_bytes(const Llama& model, const ShardRange& owned) {
  return arena_aligned(owned.length * dtype_size(model.flat_master().dtype));
}

// flat[begin, begin + length), or nothing when flat is empty (no working copy).
Tensor part(const Tensor& flat, int64_t begin, int64_t length) {
  return flat.empty() ? Tensor{} : flat.rows(begin, begin + length);
}

}  // namespace

AdamW::AdamW(Llama& model, Backend& backend, const ShardRange& owned)
    : model_(model),
      backend_(backend),
      owned_(owned),
      segments_(shard_segments(model.parameters(), owned)),
      arena_(backend, 2 * moment_bytes(model, owned)) {
  const DType dt = model.flat_master().dtype;
  m_ = arena_.take(dt, {owned.length});
  v_ = arena_.take(dt, {owned.length});
  // The alignment padding belongs to no parameter and is never updated: zero it once.
  backend.fill_zero(m_);
  backend.fill_zero(v_);
}

void AdamW::update(const Tensor& grads, const OptimConfig& o, double lr, int64_t step) {
  MEAP_CHECK(grads.numel() == owned_.length, "AdamW gradients of ", grads.numel(),
             " elements for a range of ", owned_.length);
  const Tensor master = model_.flat_master();
  // The bf16 working copy the forward reads, refreshed by the update itself.
  const Tensor working =
      model_.dtype() == DType::bf16 ? model_.flat_parameters() : Tensor{};
  AdamWStep hp{lr, o.beta1, o.beta2, o.eps, 0.0, step};
  for (const ShardSegment& seg : segments_) {
    hp.weight_decay = seg.weight_decay ? o.weight_decay : 0.0;
    const int64_t local = seg.offset - owned_.begin;  // inside the owned range
    backend_.adamw_update(part(master, seg.offset, seg.length),
                          part(grads, local, seg.length), part(m_, local, seg.length),
                          part(v_, local, seg.length), hp,
                          part(working, seg.offset, seg.length));
  }
}

}  // namespace meap
