// Whether a CUDA GPU is usable from this process.
#include <cuda_runtime.h>

#include "meap/backend/backend.hpp"

namespace meap {

bool cuda_available() {
  int count = 0;
  // No driver or no device both read as "unavailable"; clear the sticky error either way.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

}  // namespace meap
