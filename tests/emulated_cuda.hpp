// The emulated CUDA backend of the op tests: CudaBackend and the launchers of kernels/*.cu,
// compiled by the host compiler against tests/cuda_emulator.hpp (MEAP_CUDA_EMULATION), so the
// real host code and kernel source of every op run on a machine without a GPU. Not emulated:
// cuBLASLt (a host GEMM stands in) and CUB's radix sort (a stable sort stands in).
#pragma once

#include <memory>

#include "meap/backend/backend.hpp"

namespace meap::testing {

std::unique_ptr<Backend> make_emulated_cuda_backend();

// The emulator's schedule for the launches that follow: warp 0 runs ahead, or the last warp.
void set_emulator_schedule(bool last_warp_first);

}  // namespace meap::testing
