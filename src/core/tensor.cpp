#include "meap/core/tensor.hpp"

#include <sstream>

namespace meap {

Tensor::Tensor(void* data_, DType dtype_, Device device_, std::initializer_list<int64_t> dims)
    : data(data_), dtype(dtype_), device(device_), ndim(static_cast<int>(dims.size())) {
  MEAP_CHECK(dims.size() >= 1 && dims.size() <= 4, "tensors have 1 to 4 dimensions");
  int i = 0;
  for (int64_t d : dims) {
    MEAP_CHECK(d >= 0, "negative dimension");
    shape[i++] = d;
  }
}

int64_t Tensor::numel() const {
  if (ndim == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += ndim;
  MEAP_CHECK(i >= 0 && i < ndim, "dimension index out of range");
  return shape[i];
}

Tensor Tensor::reshaped(std::initializer_list<int64_t> dims) const {
  Tensor t(data, dtype, device, dims);
  MEAP_CHECK(t.numel() == numel(), "reshape ", shape_string(), " to ", t.shape_string());
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  MEAP_CHECK(ndim >= 1 && 0 <= begin && begin <= end && end <= shape[0], "row range");
  Tensor t = *this;
  t.shape[0] = end - begin;
  const int64_t row_elems = shape[0] == 0 ? 0 : numel() / shape[0];
  t.data = static_cast<char*>(data) + static_cast<size_t>(begin * row_elems) * dtype_size(dtype);
  return t;
}

std::string Tensor::shape_string() const {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < ndim; ++i) os << (i ? ", " : "") << shape[i];
  os << ")";
  return os.str();
}

}  // namespace meap
