// MEAP_CUDA_CHECK: wraps every CUDA runtime call; a failure becomes meap::Error naming
// the call, the file and line, and CUDA's own message.
#pragma once

#include <cuda_runtime.h>

#include "meap/core/error.hpp"

#define MEAP_CUDA_CHECK(call)                                                          \
  do {                                                                                 \
    const cudaError_t meap_cuda_status_ = (call);                                      \
    if (meap_cuda_status_ != cudaSuccess)                                              \
      ::meap::fail("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",     \
                   cudaGetErrorString(meap_cuda_status_));                             \
  } while (0)

// After a kernel launch: launch errors now, execution errors at the next sync.
#define MEAP_CUDA_CHECK_LAUNCH() MEAP_CUDA_CHECK(cudaGetLastError())
