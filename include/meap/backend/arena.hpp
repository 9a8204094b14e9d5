// Arena: one backend allocation carved into tensors, so memory is allocated once at
// start-up and the training step allocates nothing. ArenaPlanner measures the same
// layout without allocating, so a layout function runs twice: plan, then bind.
#pragma once

#include <cstddef>
#include <initializer_list>

#include "meap/core/tensor.hpp"

namespace meap {

class Backend;

constexpr size_t kArenaAlignment = 256;  // GPU-friendly; every tensor starts aligned
inline size_t arena_aligned(size_t bytes) {
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

class ArenaPlanner {
 public:
  explicit ArenaPlanner(Device device) : device_(device) {}
  Tensor take(DType dtype, std::initializer_list<int64_t> dims);
  size_t bytes() const { return bytes_; }

 private:
  Device device_;
  size_t bytes_ = 0;
};

class Arena {
 public:
  Arena() = default;
  Arena(Backend& backend, size_t bytes);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&& other) noexcept;
  Arena& operator=(Arena&& other) noexcept;

  // The next tensor of the layout; zero-filled memory is not promised.
  Tensor take(DType dtype, std::initializer_list<int64_t> dims);
  // The whole allocation as one 1-D tensor of dtype (for flat buffers).
  Tensor whole(DType dtype) const;
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }

 private:
  Backend* backend_ = nullptr;
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace meap
