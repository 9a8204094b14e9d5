// make_backend: picks the backend a run asked for, with a clear error when it is absent.
#include "backend/cpu/cpu_backend.hpp"
#include "meap/backend/backend.hpp"

#ifdef MEAP_WITH_CUDA
#include "backend/cuda/cuda_backend.hpp"
#endif

namespace meap {

#ifndef MEAP_WITH_CUDA
bool cuda_available() { return false; }
#endif

Device resolve_device(DeviceChoice device) {
  switch (device) {
    case DeviceChoice::cpu: return Device::cpu;
    case DeviceChoice::cuda: return Device::cuda;
    case DeviceChoice::auto_: break;
  }
  return cuda_available() ? Device::cuda : Device::cpu;
}

std::unique_ptr<Backend> make_backend(DeviceChoice device) {
  if (resolve_device(device) == Device::cpu) return std::make_unique<CpuBackend>(CpuKernels::fast);
  if (!cuda_available())
    fail("train.device is 'cuda' but ",
#ifdef MEAP_WITH_CUDA
         "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
#else
         "this build has no CUDA backend (reconfigure with -DMEAP_CUDA=ON)"
#endif
    );
#ifdef MEAP_WITH_CUDA
  return std::make_unique<CudaBackend>();
#else
  fail("unreachable: no CUDA backend in this build");
#endif
}

}  // namespace meap
