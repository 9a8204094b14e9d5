// The CUDA runtime as kernels/ and the CUDA backend see it, and MEAP_CUDA_CHECK around every
// call: a failure becomes meap::Error naming the call, the file and line, and CUDA's message.
// Compiled for a GPU this is <cuda_runtime.h>. Compiled by the host compiler with
// MEAP_CUDA_EMULATION (the op tests' emulated CUDA backend) it is tests/cuda_emulator.hpp, and
// the launchers and CudaBackend move into the inline namespace `emulated`, so one test binary
// holds both them and the real ones.
#pragma once

#include "meap/core/error.hpp"

#ifdef MEAP_CUDA_EMULATION
#include "cuda_emulator.hpp"
#define MEAP_CUDA_ABI emulated
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define MEAP_CUDA_ABI device
#endif

#define MEAP_CUDA_CHECK(call)                                                      \
  do {                                                                             \
    const cudaError_t meap_cuda_status_ = (call);                                  \
    if (meap_cuda_status_ != cudaSuccess)                                          \
      ::meap::fail("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, ": ", \
                   cudaGetErrorString(meap_cuda_status_));                         \
  } while (0)
