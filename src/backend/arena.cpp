#include "meap/backend/arena.hpp"

#include <utility>

#include "meap/backend/backend.hpp"

namespace meap {

Tensor ArenaPlanner::take(DType dtype, std::initializer_list<int64_t> dims) {
  Tensor t(nullptr, dtype, device_, dims);
  bytes_ += arena_aligned(t.nbytes());
  return t;
}

Arena::Arena(Backend& backend, size_t bytes)
    : backend_(&backend),
      base_(static_cast<char*>(backend.allocate(bytes))),
      capacity_(bytes) {}

Arena::~Arena() {
  if (backend_ && base_) backend_->deallocate(base_);
}

Arena::Arena(Arena&& other) noexcept { *this = std::move(other); }

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    if (backend_ && base_) backend_->deallocate(base_);
    backend_ = std::exchange(other.backend_, nullptr);
    base_ = std::exchange(other.base_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    used_ = std::exchange(other.used_, 0);
  }
  return *this;
}

Tensor Arena::take(DType dtype, std::initializer_list<int64_t> dims) {
  MEAP_CHECK(backend_, "arena not allocated");
  Tensor t(base_ + used_, dtype, backend_->device(), dims);
  const size_t need = arena_aligned(t.nbytes());
  MEAP_CHECK(used_ + need <= capacity_, "arena overflow: layout changed between plan and bind");
  used_ += need;
  return t;
}

Tensor Arena::whole(DType dtype) const {
  MEAP_CHECK(backend_, "arena not allocated");
  return Tensor(base_, dtype, backend_->device(),
                {static_cast<int64_t>(capacity_ / dtype_size(dtype))});
}

}  // namespace meap
