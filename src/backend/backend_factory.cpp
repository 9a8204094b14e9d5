// make_backend: picks the backend a run asked for, with a clear error when it is absent.
#include "backend/cpu/cpu_backend.hpp"
#include "meap/backend.hpp"

namespace meap {

#ifndef MEAP_WITH_CUDA
bool cuda_available() { return false; }
#endif

Device resolve_device(const std::string& device) {
  if (device == "cpu") return Device::cpu;
  // The CUDA backend's model ops arrive with the [cuda-backend] issue; until then
  // auto means the CPU even where a GPU is present.
  if (device == "auto") return Device::cpu;
  if (device == "cuda") return Device::cuda;
  fail("unknown device '", device, "' (expected auto, cpu or cuda)");
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (resolve_device(device) == Device::cpu) return std::make_unique<CpuBackend>();
  {
    if (!cuda_available())
      fail("train.device is 'cuda' but ",
#ifdef MEAP_WITH_CUDA
           "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
#else
           "this build has no CUDA backend (reconfigure with -DMEAP_CUDA=ON)"
#endif
      );
    fail("train.device 'cuda': this build's CUDA backend does not yet implement the model's "
         "ops; use train.device=cpu");
  }
  fail("unknown device '", device, "' (expected auto, cpu or cuda)");
}

}  // namespace meap
